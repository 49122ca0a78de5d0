# Compiler warnings for every capstan target.
function(capstan_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wformat=2 -Wvla
    -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter)
  if(WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
