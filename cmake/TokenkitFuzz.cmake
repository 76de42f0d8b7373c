# tokenkit_fuzz_target(<name> <sources>... [LIBS <libs>...]
#                      [SMOKE_SECONDS <s>] [LONG_SECONDS <s>])
#
# Declares one fuzz target. <sources> define LLVMFuzzerTestOneInput(); the
# seed corpus is tests/fuzz/corpus/<name>/ (must exist and be non-empty) and
# crashes once found live in tests/fuzz/regressions/<name>/. Each target is
# built two ways:
#
#   replay_<name>  the target with a plain main() (replay_main.cpp) that runs
#                  every seed and every regression file once. Built in every
#                  configuration (gcc too) and registered as the ordinary test
#                  fuzz-replay.<name>, so a crash once found stays fixed in
#                  every build, and the sanitizer build replays it under
#                  ASan/UBSan.
#   fuzz_<name>    linked with libFuzzer; only with -DTOKENKIT_FUZZ=ON (clang).
#                  Registered as fuzz-smoke.<name> (label fuzz-smoke, a short
#                  budget, run by scripts/checks/30-fuzz-smoke.sh) and
#                  fuzz.<name> (label fuzz, a long run for a developer or a
#                  nightly job). A dictionary tests/fuzz/dict/<name>.dict
#                  is used when present. New inputs go to the build tree, never to the
#                  checked-in corpus; crash files go to
#                  <build>/tests/fuzz/artifacts/<name>/.
#
# A later target is one line in tests/fuzz/CMakeLists.txt, e.g.
#   tokenkit_fuzz_target(p12 fuzz_p12.cpp LIBS tokenkit::token)
# plus a seed folder tests/fuzz/corpus/p12/.
set(TOKENKIT_FUZZ_SMOKE_SECONDS 20 CACHE STRING "Default budget of a fuzz-smoke test, seconds")
set(TOKENKIT_FUZZ_LONG_SECONDS 300 CACHE STRING "Default budget of a long (label fuzz) test, seconds")

function(tokenkit_fuzz_target name)
  cmake_parse_arguments(PARSE_ARGV 1 F "" "SMOKE_SECONDS;LONG_SECONDS" "LIBS")
  set(sources ${F_UNPARSED_ARGUMENTS})
  if(NOT sources)
    message(FATAL_ERROR "tokenkit_fuzz_target(${name}): no sources")
  endif()
  if(NOT F_SMOKE_SECONDS)
    set(F_SMOKE_SECONDS ${TOKENKIT_FUZZ_SMOKE_SECONDS})
  endif()
  if(NOT F_LONG_SECONDS)
    set(F_LONG_SECONDS ${TOKENKIT_FUZZ_LONG_SECONDS})
  endif()
  set(seeds ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name})
  set(regressions ${PROJECT_SOURCE_DIR}/tests/fuzz/regressions/${name})
  if(NOT IS_DIRECTORY ${seeds})
    message(FATAL_ERROR "tokenkit_fuzz_target(${name}): no seed corpus at ${seeds}")
  endif()

  add_executable(replay_${name} ${sources} ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.cpp)
  target_link_libraries(replay_${name} PRIVATE ${F_LIBS})
  tokenkit_warnings(replay_${name})
  add_test(NAME fuzz-replay.${name} COMMAND replay_${name} ${seeds} ${regressions})

  if(TOKENKIT_FUZZ)
    add_executable(fuzz_${name} ${sources})
    target_link_libraries(fuzz_${name} PRIVATE ${F_LIBS})
    target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    tokenkit_warnings(fuzz_${name})
    set(work ${CMAKE_CURRENT_BINARY_DIR}/work/${name})
    set(artifacts ${CMAKE_CURRENT_BINARY_DIR}/artifacts/${name})
    file(MAKE_DIRECTORY ${work} ${artifacts})
    set(dirs ${work} ${seeds})
    if(IS_DIRECTORY ${regressions})
      list(APPEND dirs ${regressions})
    endif()
    # The first folder receives new inputs; the others are only read.
    set(common -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
               -artifact_prefix=${artifacts}/)
    set(dict ${PROJECT_SOURCE_DIR}/tests/fuzz/dict/${name}.dict)
    if(EXISTS ${dict})
      list(APPEND common -dict=${dict})
    endif()
    add_test(NAME fuzz-smoke.${name}
             COMMAND fuzz_${name} ${common} -max_total_time=${F_SMOKE_SECONDS} ${dirs})
    math(EXPR smoke_timeout "${F_SMOKE_SECONDS} * 2 + 60")
    set_tests_properties(fuzz-smoke.${name} PROPERTIES LABELS fuzz-smoke TIMEOUT ${smoke_timeout})
    add_test(NAME fuzz.${name}
             COMMAND fuzz_${name} ${common} -max_total_time=${F_LONG_SECONDS} ${dirs})
    math(EXPR long_timeout "${F_LONG_SECONDS} * 2 + 60")
    set_tests_properties(fuzz.${name} PROPERTIES LABELS fuzz TIMEOUT ${long_timeout})
  endif()
endfunction()
