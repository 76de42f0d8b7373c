# Included by ctest after module_threads_tests' discovered tests
# (tests/module/CMakeLists.txt): labels them "module" and "threads".
if(module_threads_tests_TESTS)
  set_tests_properties(${module_threads_tests_TESTS} PROPERTIES LABELS "module;threads")
endif()
