# Writes the build's identity into OUTPUT (a C++ source defining roomcast::base::build_info()):
# VERSION (the project's) and the git commit of SOURCE_DIR, "unknown" outside a git checkout
# (a source tarball) or without git. Run at every build (src/base/CMakeLists.txt), so the commit
# is the one built, not the one configured; configure_file leaves OUTPUT untouched while it
# is the same, so nothing is recompiled unless the commit changed.
set(commit unknown)
find_program(GIT_EXECUTABLE git)
if(GIT_EXECUTABLE)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} rev-parse --short=12 HEAD
                  OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE head_status ERROR_QUIET)
  if(head_status EQUAL 0 AND head MATCHES "^[0-9a-f]+$")
    set(commit ${head})
    # Built with changes not committed: the commit alone would name other code.
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} diff --quiet HEAD --
                    RESULT_VARIABLE dirty ERROR_QUIET)
    if(NOT dirty EQUAL 0)
      string(APPEND commit "-dirty")
    endif()
  endif()
endif()
configure_file(${TEMPLATE} ${OUTPUT} @ONLY)
