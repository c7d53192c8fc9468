# Warnings every roomcast target compiles with. Third-party headers come in as system
# headers, so these apply to our code only.
function(roomcast_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                                           -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
                                           -Woverloaded-virtual -Wimplicit-fallthrough)
  if(ROOMCAST_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
