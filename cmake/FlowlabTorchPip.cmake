# Building against PyPI's torch 2.x (a CUDA build) next to Debian's libraries: used by flowlab's own CMakeLists
# (FLOWLAB_TORCH=pip) and by the installed flowlabConfig.cmake, so out-of-tree plugins build the same way.

# Before find_package(Torch): `torch_prefix` is the wheel's torch.utils.cmake_prefix_path.
macro(flowlab_torch_pip_before torch_prefix)
  list(PREPEND CMAKE_PREFIX_PATH ${torch_prefix})
  # TorchConfig's find_library calls search the system before the wheel: with Debian's libtorch-dev installed too,
  # they would pick /usr/lib's libtorch.so. The wheel's lib/ goes first, and entries an earlier configure found
  # outside the wheel are dropped.
  get_filename_component(FLOWLAB_TORCH_ROOT ${torch_prefix}/../.. ABSOLUTE)
  list(PREPEND CMAKE_LIBRARY_PATH ${FLOWLAB_TORCH_ROOT}/lib)
  foreach(_lib TORCH_LIBRARY c10_LIBRARY C10_CUDA_LIBRARY torch_cpu_LIBRARY torch_cuda_LIBRARY kineto_LIBRARY)
    if(DEFINED CACHE{${_lib}} AND NOT "${${_lib}}" MATCHES "^${FLOWLAB_TORCH_ROOT}/")
      unset(${_lib} CACHE)
    endif()
  endforeach()
  # TorchConfig links CUDA_NVRTC_LIB into every consumer: the wheel's libnvrtc, not the toolkit's.
  file(GLOB _flowlab_nvrtc ${FLOWLAB_TORCH_ROOT}/../nvidia/*/lib/libnvrtc.so.[0-9]*)
  if(_flowlab_nvrtc)
    list(GET _flowlab_nvrtc 0 _flowlab_nvrtc)
    get_filename_component(_flowlab_nvrtc ${_flowlab_nvrtc} ABSOLUTE)
    set(CUDA_NVRTC_LIB ${_flowlab_nvrtc} CACHE FILEPATH "libnvrtc of the torch wheel" FORCE)
  endif()
  # The CUDA toolkit gives CMake's FindCUDAToolkit its headers; it must be of the wheel's CUDA major (13 here).
  if(NOT DEFINED CUDAToolkit_ROOT AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
endmacro()

# After find_package(Torch).
macro(flowlab_torch_pip_after)
  # The wheel's libtorch_cuda.so has no RUNPATH (Python preloads the nvidia-* wheels' libraries): binaries carry
  # the wheel's folders as DT_RPATH (--disable-new-dtags), which, unlike DT_RUNPATH, also serves the libraries
  # that libtorch loads.
  get_filename_component(_flowlab_site ${FLOWLAB_TORCH_ROOT}/.. ABSOLUTE)
  file(GLOB _flowlab_nvidia_dirs LIST_DIRECTORIES true ${_flowlab_site}/nvidia/*/lib)
  set(CMAKE_BUILD_RPATH ${FLOWLAB_TORCH_ROOT}/lib ${_flowlab_nvidia_dirs})
  set(CMAKE_INSTALL_RPATH ${FLOWLAB_TORCH_ROOT}/lib ${_flowlab_nvidia_dirs})
  add_link_options(-Wl,--disable-new-dtags)
  # The wheel's libtorch.so exports its own copies of std::filesystem (64 symbols, unversioned); listed before
  # libstdc++ in a binary's NEEDED entries, they interpose, and remove_all jumps to null. libstdc++ goes first.
  add_link_options(-Wl,--no-as-needed,-lstdc++,--as-needed)
  # One CUDA runtime per process: the wheel's libcudart.so.13 (and its libnvrtc), never the toolkit's; the
  # toolkit gives headers only.
  foreach(_pair "torch::cudart;libcudart.so.*" "caffe2::nvrtc;libnvrtc.so.*")
    list(GET _pair 0 _target)
    list(GET _pair 1 _pattern)
    file(GLOB _wheel_lib ${_flowlab_site}/nvidia/*/lib/${_pattern})
    list(FILTER _wheel_lib EXCLUDE REGEX "builtins|alt")
    if(TARGET ${_target} AND _wheel_lib)
      list(GET _wheel_lib 0 _wheel_lib)
      get_target_property(_old ${_target} INTERFACE_LINK_LIBRARIES)
      list(FILTER _old EXCLUDE REGEX "^CUDA::(cudart|nvrtc)")
      set_property(TARGET ${_target} PROPERTY INTERFACE_LINK_LIBRARIES ${_wheel_lib} ${_old})
      get_filename_component(_wheel_include ${_wheel_lib}/../../include ABSOLUTE)
      set_property(TARGET ${_target} APPEND PROPERTY INTERFACE_INCLUDE_DIRECTORIES ${_wheel_include})
      message(STATUS "flowlab: ${_target} -> ${_wheel_lib} (the wheel's)")
    endif()
  endforeach()
endmacro()

# After find_package(fmt): the wheel ships fmt 12's headers in its include folder, which comes first as -isystem;
# flowlab links Debian's libfmt (9), so its headers must win: a -I folder (searched before -isystem) with a link.
macro(flowlab_fmt_first)
  get_target_property(_flowlab_fmt_include fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
  if(_flowlab_fmt_include)
    list(GET _flowlab_fmt_include 0 _flowlab_fmt_include)
    file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fmt-first)
    file(CREATE_LINK ${_flowlab_fmt_include}/fmt ${CMAKE_BINARY_DIR}/fmt-first/fmt SYMBOLIC)
    set_property(TARGET fmt::fmt APPEND PROPERTY INTERFACE_COMPILE_OPTIONS -I${CMAKE_BINARY_DIR}/fmt-first)
  endif()
endmacro()
