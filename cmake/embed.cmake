# capstan_embed(NAME DIR GLOB OUT): generate OUT, a C file with every file of DIR that matches
# GLOB as a table `const struct embedded_file embedded_<NAME>[]` sorted by name and ended by a
# NULL name. The generation re-runs when a file is added, removed or changed.
function(capstan_embed name dir glob out)
  file(GLOB files CONFIGURE_DEPENDS ${dir}/${glob})
  list(SORT files)
  # a CMake list cannot pass through a command line: join with '|' (split again in the script)
  string(REPLACE ";" "|" files_arg "${files}")
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DNAME=${name} -DOUT=${out} "-DFILES=${files_arg}"
            -P ${CMAKE_SOURCE_DIR}/cmake/embed_gen.cmake
    DEPENDS ${files} ${CMAKE_SOURCE_DIR}/cmake/embed_gen.cmake
    COMMENT "Embedding ${name}" VERBATIM)
endfunction()
