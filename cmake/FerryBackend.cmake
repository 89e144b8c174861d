# ferry_add_backend(<name> SOURCES <src>... [LIBRARIES <lib>...] [OUTPUT_DIRECTORY <dir>])
#
# Builds libferry-backend-<name>.so, the one shape every ferry backend has: a MODULE
# library with hidden visibility that exports only ferry_backend_entry. Used by the
# in-tree backends and, from the installed package, by third-party plugins.
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
  # A plugin must resolve every symbol at dlopen time, not at first call.
  target_link_options(${target} PRIVATE -Wl,--no-undefined)
endfunction()
