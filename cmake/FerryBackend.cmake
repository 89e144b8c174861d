# ferry_add_backend(<name> SOURCES <src>... [LIBRARIES <lib>...] [OUTPUT_DIRECTORY <dir>])
#
# Builds libferry-backend-<name>.so, the one shape every ferry backend has: a MODULE
# library with hidden visibility that exports only its entry symbol (ferry_backend_entry2).
# Used by the in-tree backends and, from the installed package, by third-party plugins.
function(ferry_add_backend name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  set(target ferry-backend-${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    OUTPUT_NAME ferry-backend-${name}
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    CUDA_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  elseif(DEFINED FERRY_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${FERRY_PLUGIN_OUTPUT_DIR})
  endif()
  if(TARGET ferry::backend_sdk)
    target_link_libraries(${target} PRIVATE ferry::backend_sdk)
  else()
    target_link_libraries(${target} PRIVATE ferry_backend_sdk)
  endif()
  if(ARG_LIBRARIES)
    target_link_libraries(${target} PRIVATE ${ARG_LIBRARIES})
  endif()
  ferry_plugin_no_undefined(${target})
endfunction()

# A plugin (backend or communicator) must resolve every symbol at dlopen time, not at
# first call. Clang's sanitizer runtimes are linked into the executable only, so a
# sanitized clang plugin leaves __asan_*/__tsan_* undefined for the program to provide;
# the check stays on for every other build (gcc links its sanitizer runtimes into shared
# objects too).
function(ferry_plugin_no_undefined target)
  set(sanitized OFF)
  if(FERRY_SANITIZE OR "${CMAKE_C_FLAGS} ${CMAKE_MODULE_LINKER_FLAGS}" MATCHES "-fsanitize=")
    set(sanitized ON)
  endif()
  if(NOT (sanitized AND CMAKE_C_COMPILER_ID MATCHES "Clang"))
    target_link_options(${target} PRIVATE -Wl,--no-undefined)
  endif()
endfunction()
