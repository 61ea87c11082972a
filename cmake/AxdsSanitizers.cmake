include_guard(GLOBAL)
# AXDS_SANITIZE is a comma list handed to -fsanitize= (address,undefined or thread). Applied to every target in the
# build (set globally before targets are made) so the library, tests and examples agree.
if(AXDS_SANITIZE)
  if(AXDS_SANITIZE MATCHES "thread" AND AXDS_SANITIZE MATCHES "address")
    message(FATAL_ERROR "AXDS_SANITIZE='${AXDS_SANITIZE}': thread cannot be combined with address")
  endif()
  message(STATUS "axds: sanitizers ${AXDS_SANITIZE}")
  add_compile_options(-fsanitize=${AXDS_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all -g)
  add_link_options(-fsanitize=${AXDS_SANITIZE})
endif()
