# Writes OUT, a header defining PS_VERSION_STRING: the project version (VERSION)
# and, when SRC is a git checkout and git is there, `git describe` of it, e.g.
# "0.1.0 (git 852b104-dirty)". Run as a script (cmake -P) on every build, so the
# description follows new commits; OUT is rewritten only when it changes, so
# nothing recompiles otherwise.
set(text "${VERSION}")
find_package(Git QUIET)
if(GIT_FOUND AND EXISTS "${SRC}/.git")
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SRC}" describe --tags --always --dirty
                  OUTPUT_VARIABLE described OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE failed ERROR_QUIET)
  if(NOT failed AND described)
    set(text "${VERSION} (git ${described})")
  endif()
endif()
set(content "#pragma once\n#define PS_VERSION_STRING \"${text}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT "${old}" STREQUAL "${content}")
  file(WRITE "${OUT}" "${content}")
endif()
