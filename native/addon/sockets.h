// Socket back-end bindings (native/addon/sockets.cpp) and the two hooks addon.cpp needs from them.
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "port.h"

// Adds exports.createSocketBackend(name). Called once per environment from the addon's Init.
void InitSockets(Napi::Env env, Napi::Object exports);

// Adds the socket fields to a packet object being returned to JS: `op` and `socket` when non-zero, and
// `data` (a Buffer) for a recv completion whose bytes are still held by the back-end that owns the op
// (taken once, via Backend::take_data).
void AttachSocketFields(Napi::Env env, Napi::Object& packet, const cpspec::Packet& p);

// Defined in addon.cpp: the port behind a Port object (from createPort/openPort) or a port id; throws an
// Error with code 'invalid' otherwise.
std::shared_ptr<cpspec::Port> PortFromValue(Napi::Env env, const Napi::Value& v, const std::string& what);
