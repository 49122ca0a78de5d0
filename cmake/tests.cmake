# Test helpers: cmocka unit tests and Python black-box tests, all driven by ctest.
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
find_program(PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT PYTHON3)
  find_program(PYTHON3 NAMES python3 REQUIRED)
endif()

# capstan_unit_test(path/to/x_test.c): one test executable per file, named unit.<dir>.<x>.
function(capstan_unit_test src)
  file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR}/tests/unit ${src})
  string(REGEX REPLACE "_test\\.c$" "" stem ${rel})
  string(REPLACE "/" "." name "unit.${stem}")
  string(REPLACE "." "_" target ${name})
  add_executable(${target} ${src})
  target_link_libraries(${target} PRIVATE capstan_core PkgConfig::CMOCKA)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
  capstan_warnings(${target})
  add_test(NAME ${name} COMMAND ${target})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120
    ENVIRONMENT "CAPSTAN_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

# capstan_py_test(path/to/test_x.py [LABELS l...] [TIMEOUT s] [FIXTURES f...]): a black-box test.
function(capstan_py_test src)
  cmake_parse_arguments(T "" "TIMEOUT" "LABELS;FIXTURES" ${ARGN})
  get_filename_component(stem ${src} NAME_WE)
  string(REGEX REPLACE "^test_" "" stem ${stem})
  set(name "integration.${stem}")
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_test(NAME ${name} COMMAND ${PYTHON3} -u ${src})
  set_tests_properties(${name} PROPERTIES LABELS "integration;${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "CAPSTAN_BIN=$<TARGET_FILE:capstan>;${INTEGRATION_ENV}")
  if(T_FIXTURES)
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${T_FIXTURES}")
  endif()
endfunction()
