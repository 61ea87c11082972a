# How ctest shares the machine when run with -j (the README's test command uses -j2, CI has 2 cores).
#
# Most tests start threads, time things or run several processes: each claims every processor (PROCESSORS 2 under
# -j2), so it runs alone and sees the same machine it would see under a serial ctest. A few long tests are built to
# tolerate a busy machine and spend most of their time waiting (the SIGKILL crash harness waits on disk and on the
# processes it kills; each fuzz target runs for a fixed number of seconds, however fast it goes): they claim one
# processor, so they run beside each other instead of adding their minutes to the end of the run.
#
# Tests whose names match AXDS_SHARED_TEST_REGEX share; every other test of a directory that calls
# axds_schedule_tests() as its last line (and, through AXDS_EXCLUSIVE_TEST_PROPERTIES, every discovered Catch2 test
# case) runs alone. set_tests_properties reaches only the calling directory's tests, hence one call per directory.
set(AXDS_SHARED_TEST_REGEX "^(crash_consistency|fuzz_.*)$")
set(AXDS_EXCLUSIVE_TEST_PROPERTIES PROCESSORS 2)

function(axds_schedule_tests)
  get_property(_tests DIRECTORY PROPERTY TESTS)
  foreach(_test IN LISTS _tests)
    if(_test MATCHES "${AXDS_SHARED_TEST_REGEX}")
      set_tests_properties(${_test} PROPERTIES PROCESSORS 1)
    else()
      set_tests_properties(${_test} PROPERTIES ${AXDS_EXCLUSIVE_TEST_PROPERTIES})
    endif()
  endforeach()
endfunction()
