# Sanitizers for the whole tree: -DTOKENKIT_SANITIZE=address,undefined or thread.
if(TOKENKIT_SANITIZE)
  add_compile_options(-fsanitize=${TOKENKIT_SANITIZE} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${TOKENKIT_SANITIZE})
  if(TOKENKIT_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize-recover=all)
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
