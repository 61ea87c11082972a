include_guard(GLOBAL)
# axds_set_warnings(<target>): our warning set, PRIVATE only (never pushed onto consumers).
function(axds_set_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor -Wold-style-cast
    -Woverloaded-virtual -Wnull-dereference -Wno-missing-field-initializers
    $<$<BOOL:${AXDS_WARNINGS_AS_ERRORS}>:-Werror>)
endfunction()
