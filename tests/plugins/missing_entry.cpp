// Test plugin whose record is present but whose factory symbol is not. The record is written out by hand, with
// FLOWLAB_API_VERSION as text.
#include "flowlab/plugin.hpp"

#define FLOWLAB_TEST_TEXT(x) #x
#define FLOWLAB_TEST_VERSION(x) FLOWLAB_TEST_TEXT(x)

extern "C" __attribute__((used, visibility("default"), section("flowlab_plugins")))
const char flowlab_info_noise_no_entry[] = "\x02" "FLOWLAB\x1f" FLOWLAB_TEST_VERSION(FLOWLAB_API_VERSION) "\x1f" "noise\x1f" "no_entry\x1f" "1.0.0\x1f"
                                           "record without a factory\x1f";
