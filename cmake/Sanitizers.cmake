# Applies the sanitizer chosen by ROOMCAST_SANITIZE to everything built after this point.
if(ROOMCAST_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
elseif(ROOMCAST_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  # GCC warns that TSan does not model the standalone fences Asio uses; that is a note
  # about TSan's coverage, not a defect in our code.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-Wno-tsan)
  endif()
  add_link_options(-fsanitize=thread)
elseif(NOT ROOMCAST_SANITIZE STREQUAL "")
  message(FATAL_ERROR "ROOMCAST_SANITIZE must be empty, address or thread")
endif()
