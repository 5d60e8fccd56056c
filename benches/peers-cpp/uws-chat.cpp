// uWebSockets C++ chat server for benches/broadcast.sh: uws-chat PORT. The same protocol and
// limits as benches/peers-js/uws-chat.js (the ringws chat protocol's pub/sub subset, JSON text
// frames), on uWS C++ itself (the library uWebSockets.js wraps):
//   -> {"op":"join","room":R}            <- {"op":"joined","room":R,"online":N}  (ws->subscribe)
//   -> {"op":"send","room":R,"text":T}   <- {"op":"message","room":R,"text":T,"ts":ms} to every
//                                           subscriber of R, the sender included (app.publish)
//   anything else                        <- {"op":"error","code":...,"message":...}
// Rooms are 1-64 of [A-Za-z0-9._-], texts at most 4096 bytes (as JSON, escapes included).
// maxPayloadLength 64 KiB; maxBackpressure 16 MiB, closeOnBackpressureLimit off; no
// compression; idleTimeout 0. 127.0.0.1 only. Built by install_uws_cpp in benches/lib.sh.
//
// The requests are read by a small scanner for the fields above (string values kept in their
// JSON-escaped form and written back as they came), not a general JSON parser: enough for the
// load tool's requests, and cheaper than a parser, which favours this peer, not ringws.
#include "App.h"
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

namespace {

// The raw (still escaped) string value of "key" at the top level of a flat JSON object.
std::optional<std::string_view> field(std::string_view json, std::string_view key) {
    size_t i = 0;
    while (i < json.size()) {
        size_t q = json.find('"', i);
        if (q == std::string_view::npos) return std::nullopt;
        size_t end = q + 1;
        while (end < json.size() && json[end] != '"') end += json[end] == '\\' ? 2 : 1;
        if (end >= json.size()) return std::nullopt;
        std::string_view name = json.substr(q + 1, end - q - 1);
        size_t colon = json.find_first_not_of(" \t\r\n", end + 1);
        if (colon == std::string_view::npos || json[colon] != ':') {
            i = end + 1;  // a value, not a key
            continue;
        }
        size_t v = json.find_first_not_of(" \t\r\n", colon + 1);
        if (v == std::string_view::npos) return std::nullopt;
        if (json[v] != '"') {
            if (name == key) return std::nullopt;  // not a string
            i = v;
            continue;
        }
        size_t ve = v + 1;
        while (ve < json.size() && json[ve] != '"') ve += json[ve] == '\\' ? 2 : 1;
        if (ve >= json.size()) return std::nullopt;
        if (name == key) return json.substr(v + 1, ve - v - 1);
        i = ve + 1;
    }
    return std::nullopt;
}

bool good_room(std::string_view r) {
    if (r.empty() || r.size() > 64) return false;
    for (char c : r) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

struct PerSocketData {};

}  // namespace

int main(int argc, char **argv) {
    int port = argc > 1 ? std::atoi(argv[1]) : 0;
    if (port <= 0 || port > 65535) {
        std::cerr << "usage: uws-chat PORT" << std::endl;
        return 2;
    }
    uWS::App *app = new uWS::App();
    auto error = [](auto *ws, const char *code, const char *message) {
        std::string out = std::string("{\"op\":\"error\",\"code\":\"") + code +
                          "\",\"message\":\"" + message + "\"}";
        ws->send(out, uWS::OpCode::TEXT);
    };
    app->ws<PerSocketData>("/*", {
        .compression = uWS::DISABLED,
        .maxPayloadLength = 64 * 1024,
        .idleTimeout = 0,
        .maxBackpressure = 16 * 1024 * 1024,
        .closeOnBackpressureLimit = false,
        .resetIdleTimeoutOnSend = false,
        .sendPingsAutomatically = false,
        .message = [&app, error](auto *ws, std::string_view message, uWS::OpCode opCode) {
            if (opCode != uWS::OpCode::TEXT) return error(ws, "binary", "requests are JSON text frames");
            if (message.empty() || message.front() != '{' || message.back() != '}')
                return error(ws, "bad_json", "not JSON");
            auto op = field(message, "op");
            auto room = field(message, "room");
            if (!room || !good_room(*room)) return error(ws, "bad_room", "bad room");
            if (op == "join") {
                ws->subscribe(*room);
                std::string out = "{\"op\":\"joined\",\"room\":\"" + std::string(*room) +
                                  "\",\"online\":" + std::to_string(app->numSubscribers(*room)) + "}";
                ws->send(out, uWS::OpCode::TEXT);
            } else if (op == "send") {
                auto text = field(message, "text");
                if (!text) return error(ws, "missing_field", "'text' is missing");
                if (text->size() > 4096) return error(ws, "too_long", "text too long");
                if (!ws->isSubscribed(*room)) return error(ws, "not_joined", "join the room first");
                long long ts = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch()).count();
                std::string out = "{\"op\":\"message\",\"room\":\"" + std::string(*room) +
                                  "\",\"text\":\"" + std::string(*text) +
                                  "\",\"ts\":" + std::to_string(ts) + "}";
                app->publish(*room, out, uWS::OpCode::TEXT);
            } else {
                error(ws, "unknown_op", "unknown op");
            }
        },
    }).listen("127.0.0.1", port, LIBUS_LISTEN_EXCLUSIVE_PORT, [port](auto *listen_socket) {
        if (!listen_socket) {
            std::cerr << "uws-chat: cannot listen on 127.0.0.1:" << port << std::endl;
            std::exit(1);
        }
        std::cerr << "uWebSockets C++ chat on 127.0.0.1:" << port << std::endl;
    });
    app->run();
    delete app;
}
