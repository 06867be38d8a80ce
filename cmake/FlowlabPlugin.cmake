# flowlab_add_plugin(NAME [NO_INSTALL] SOURCES...): builds a flowlab plugin library (a MODULE, hidden visibility).
# In the tree it lands in the build's plugin directory and is installed (unless NO_INSTALL: the test suite's
# plugins); out of the tree, in the current binary dir (point FLOWLAB_PLUGIN_PATH at it). One library may hold
# several plugins.
function(flowlab_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 _fp "NO_INSTALL" "" "")
  add_library(${name} MODULE ${_fp_UNPARSED_ARGUMENTS})
  set_target_properties(${name} PROPERTIES
    PREFIX "lib" CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON POSITION_INDEPENDENT_CODE ON)
  if(TARGET flowlab_sdk)            # in-tree build
    target_link_libraries(${name} PRIVATE flowlab_sdk)
    flowlab_use_pch(${name})
    flowlab_warnings(${name})
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${FLOWLAB_PLUGIN_DIR})
    if(NOT _fp_NO_INSTALL)
      install(TARGETS ${name} LIBRARY DESTINATION ${FLOWLAB_INSTALL_PLUGIN_DIR})
    endif()
  else()                            # out of tree, through find_package(flowlab)
    target_link_libraries(${name} PRIVATE flowlab::flowlab_sdk)
  endif()
endfunction()
