#include "tests/harness.h"
int main(int argc, char **argv) { return me_test_main(argc, argv); }
