/* docs/openapi.json inside the binary, for GET /openapi.json: the checked-in
 * file is the one source (the Makefile rebuilds this object when it
 * changes), so the served document cannot drift from docs/. */
__asm__(".section .rodata\n"
        ".global me_openapi_json\n"
        ".type me_openapi_json, @object\n"
        "me_openapi_json:\n"
        ".incbin \"docs/openapi.json\"\n"
        ".global me_openapi_json_end\n"
        ".type me_openapi_json_end, @object\n"
        "me_openapi_json_end:\n"
        ".byte 0\n"
        ".previous\n");
