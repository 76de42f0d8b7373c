# tokenkit_emulator_lab(<name> <probe> <lock> <up-timeout> <out-var>)
#
# One lab of emulated hardware (../shared/emulators, next to the checkout)
# for all tests labelled <name>: the fixture test <name>_lab_up starts it
# (tests/<name>/lab-up.sh LAB EMULATORS) and <name>_lab_down stops it even
# when tests fail; both hold RESOURCE_LOCK <lock>. <out-var> is set to the
# lab directory, or to "" when the emulators (the file <probe>) are missing:
# then one test reports the suite as skipped, with the reason, never as
# passed, and the caller adds nothing else.
function(tokenkit_emulator_lab name probe lock up_timeout out_var)
  string(TOUPPER "${name}" upper)
  set(TOKENKIT_${upper}_EMULATORS "${PROJECT_SOURCE_DIR}/../shared/emulators" CACHE PATH
      "the emulated hardware tokens (shared/emulators)")
  set(emulators "${TOKENKIT_${upper}_EMULATORS}")
  set(lab "${CMAKE_CURRENT_BINARY_DIR}/lab")
  if(NOT EXISTS "${emulators}/${probe}")
    add_test(NAME ${name}_emulators_missing
             COMMAND sh -c "echo '${upper} tests skipped: no emulators at ${emulators} (set TOKENKIT_${upper}_EMULATORS)'; exit 77")
    set_tests_properties(${name}_emulators_missing PROPERTIES LABELS "${name}" SKIP_RETURN_CODE 77)
    set(${out_var} "" PARENT_SCOPE)
    return()
  endif()
  add_test(NAME ${name}_lab_up COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/lab-up.sh ${lab} ${emulators})
  add_test(NAME ${name}_lab_down COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/lab-down.sh ${lab} ${emulators})
  set_tests_properties(${name}_lab_up PROPERTIES FIXTURES_SETUP ${name}_lab LABELS "${name}"
                       RESOURCE_LOCK ${lock} TIMEOUT ${up_timeout})
  set_tests_properties(${name}_lab_down PROPERTIES FIXTURES_CLEANUP ${name}_lab LABELS "${name}"
                       RESOURCE_LOCK ${lock} TIMEOUT 60)
  set(${out_var} "${lab}" PARENT_SCOPE)
endfunction()
