# Shared compile flags for every target of the project.
add_library(ps_build_flags INTERFACE)
target_compile_options(ps_build_flags INTERFACE -Wall -Wextra -Wnon-virtual-dtor
                                              $<$<CXX_COMPILER_ID:GNU>:-Wshadow=local>)
if(PS_WERROR)
  # g++ 12 reports false positives for vector::insert under -O2 (GCC bugs
  # 105651, 106199); keep them visible as warnings, not build breakers.
  target_compile_options(ps_build_flags INTERFACE -Werror -Wno-error=array-bounds -Wno-error=stringop-overflow)
endif()
if(PS_SANITIZE)
  target_compile_options(ps_build_flags INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                  -fno-sanitize-recover=undefined)
  target_link_options(ps_build_flags INTERFACE -fsanitize=address,undefined)
endif()
if(PS_TSAN)
  if(PS_SANITIZE)
    message(FATAL_ERROR "PS_TSAN and PS_SANITIZE cannot be combined: build them in separate trees")
  endif()
  target_compile_options(ps_build_flags INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(ps_build_flags INTERFACE -fsanitize=thread)
endif()

# ps_add_module(name DIR dir [DEPS ...] [PRIVATE_DEPS ...] [EXCLUDE files...])
# One static library per folder; the repository root is the only include root,
# so headers are included by module path ("crypto/crypto.hpp").
function(ps_add_module name)
  cmake_parse_arguments(M "" "DIR" "DEPS;PRIVATE_DEPS;EXCLUDE" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${M_DIR}/*.cpp)
  foreach(ex ${M_EXCLUDE})
    list(REMOVE_ITEM srcs ${CMAKE_SOURCE_DIR}/${M_DIR}/${ex})
  endforeach()
  if(srcs)
    add_library(ps_${name} STATIC ${srcs})
    target_include_directories(ps_${name} PUBLIC ${CMAKE_SOURCE_DIR})
    target_link_libraries(ps_${name} PUBLIC ${M_DEPS} PRIVATE ${M_PRIVATE_DEPS} ps_build_flags)
  else()
    add_library(ps_${name} INTERFACE)
    target_include_directories(ps_${name} INTERFACE ${CMAKE_SOURCE_DIR})
    target_link_libraries(ps_${name} INTERFACE ${M_DEPS})
  endif()
endfunction()
