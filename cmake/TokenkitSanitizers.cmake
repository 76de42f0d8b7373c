# Sanitizers for the whole tree: -DTOKENKIT_SANITIZE=address,undefined or thread.
if(TOKENKIT_SANITIZE)
  add_compile_options(-fsanitize=${TOKENKIT_SANITIZE} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${TOKENKIT_SANITIZE})
  if(TOKENKIT_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize-recover=all)
  endif()
  # clang links the sanitizer runtime statically into executables only; a
  # module (tokenkit-pkcs11.so) then has undefined __asan_*/__ubsan_*
  # symbols, which -Wl,--no-undefined refuses and which peer tools
  # (pkcs11-tool, p11tool, NSS) cannot resolve when they load it. With the
  # shared runtime every binary, the module included, names it as a needed
  # library, found through the rpath. An uninstrumented peer that loads the
  # module loads the runtime late: ASAN_OPTIONS=verify_asan_link_order=0
  # (scripts/checks/10-sanitizers.sh) lets it, and the module's own code is
  # still checked there.
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang" AND TOKENKIT_SANITIZE MATCHES "address")
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libclang_rt.asan-x86_64.so
                    OUTPUT_VARIABLE _tk_asan_rt OUTPUT_STRIP_TRAILING_WHITESPACE)
    get_filename_component(_tk_asan_dir "${_tk_asan_rt}" DIRECTORY)
    add_link_options(-shared-libsan -Wl,-rpath,${_tk_asan_dir})
  endif()
endif()

# libFuzzer targets (tests/fuzz, cmake/TokenkitFuzz.cmake) learn which inputs
# are new from coverage of the code they reach, so with TOKENKIT_FUZZ=ON the
# whole tree is built with libFuzzer's coverage instrumentation (its runtime
# is linked into the fuzz_* executables only).
if(TOKENKIT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "TOKENKIT_FUZZ=ON needs clang (libFuzzer): configure with CXX=clang++")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
