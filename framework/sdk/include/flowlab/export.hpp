// Symbol visibility for types that cross the plugin boundary (Boost.DLL tutorial_common/my_plugin_api.hpp).
#pragma once

// Interfaces and exception types must have one type_info on both sides of a dlopen, or dynamic_cast and
// catch across the boundary silently fail; every such type is marked FLOWLAB_API.
#define FLOWLAB_API __attribute__((visibility("default")))
