// Whether the client of a request still holds its connection.
//
// A handler that waits for a whole completion writes nothing until the end, so a client that gave up (a timeout,
// a retry, Ctrl-C) is not seen by a failed write; its request would go on to max_tokens and hold a slot.
// cpp-httplib 0.11.4 (Debian 12) gives a handler neither its socket nor is_connection_closed() (added upstream
// later), but it does give the connection's two addresses: this finds the socket by them, once, and then peeks it.
#pragma once
#include <string>

namespace httplib {
struct Request;
}

namespace chatmill::serve {

class ClientWatch {
 public:
  explicit ClientWatch(const httplib::Request& req);
  // True once the client has closed or reset the connection. As in uvicorn and Go's net/http, an end of stream
  // counts as gone: HTTP clients do not half-close while they wait for a response. False when the socket was not
  // found (then nothing changes: the request runs to its end).
  bool gone() const;
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;  // borrowed: httplib keeps it open until the response is written
};

// "addr:port" of a socket's own end (peer = false) or of its peer, numeric, as httplib writes them; "" for a
// descriptor that is not a connected internet socket.
std::string socket_address(int fd, bool peer);

}  // namespace chatmill::serve
