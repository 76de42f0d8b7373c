# Sanitizers for the whole tree: -DTOKENKIT_SANITIZE=address,undefined or thread.
if(TOKENKIT_SANITIZE)
  add_compile_options(-fsanitize=${TOKENKIT_SANITIZE} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${TOKENKIT_SANITIZE})
  if(TOKENKIT_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize-recover=all)
  endif()
endif()
