# Applies the sanitizer chosen by ROOMCAST_SANITIZE to everything built after this point.
if(ROOMCAST_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
elseif(ROOMCAST_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT ROOMCAST_SANITIZE STREQUAL "")
  message(FATAL_ERROR "ROOMCAST_SANITIZE must be empty, address or thread")
endif()
