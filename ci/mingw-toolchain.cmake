# CMake toolchain for cross-compiling cpspec for Windows x86_64 with mingw-w64 on Linux (Debian:
# g++-mingw-w64-x86-64). Uses the posix-threads compiler variant (the win32 one has no std::thread) and links
# everything statically, so the .exe needs no mingw DLLs under Wine or on Windows.
#   cmake -S native/iocp -B build-mingw -DCMAKE_TOOLCHAIN_FILE=ci/mingw-toolchain.cmake
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(MINGW_TRIPLET x86_64-w64-mingw32)

find_program(MINGW_CXX NAMES ${MINGW_TRIPLET}-g++-posix REQUIRED)
find_program(MINGW_CC NAMES ${MINGW_TRIPLET}-gcc-posix ${MINGW_TRIPLET}-gcc)
find_program(MINGW_WINDRES NAMES ${MINGW_TRIPLET}-windres)
set(CMAKE_CXX_COMPILER ${MINGW_CXX})
if(MINGW_CC)
  set(CMAKE_C_COMPILER ${MINGW_CC})
endif()
if(MINGW_WINDRES)
  set(CMAKE_RC_COMPILER ${MINGW_WINDRES})
endif()

set(CMAKE_FIND_ROOT_PATH /usr/${MINGW_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Static C++ runtime and winpthreads: a standalone executable.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")
