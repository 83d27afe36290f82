// ClientWatch on real loopback TCP connections: it finds the accepted socket by the request's addresses and
// tells a live client (idle, or with bytes waiting) from one that closed or reset.
#include "serve/client_watch.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace chatmill::serve {
namespace {

struct Loopback {
  int listener = -1, client = -1, server = -1;
  Loopback() {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(listener, 4), 0);
    EXPECT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len), 0);
    client = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    server = accept(listener, nullptr, nullptr);
    EXPECT_GE(server, 0);
  }
  ~Loopback() {
    for (int fd : {listener, client, server})
      if (fd >= 0) close(fd);
  }
  // What httplib fills in for a request on the server's end, written independently of socket_address: the
  // numeric address (inet_ntop) and the port of each end.
  httplib::Request request() const {
    httplib::Request r;
    for (bool peer : {false, true}) {
      sockaddr_in a{};
      socklen_t len = sizeof a;
      EXPECT_EQ(peer ? getpeername(server, reinterpret_cast<sockaddr*>(&a), &len)
                     : getsockname(server, reinterpret_cast<sockaddr*>(&a), &len), 0);
      char host[INET_ADDRSTRLEN];
      EXPECT_NE(inet_ntop(AF_INET, &a.sin_addr, host, sizeof host), nullptr);
      (peer ? r.remote_addr : r.local_addr) = host;
      (peer ? r.remote_port : r.local_port) = ntohs(a.sin_port);
    }
    return r;
  }
};

TEST(ClientWatch, SeesAnOrderlyClose) {
  Loopback l;
  ASSERT_EQ(socket_address(l.server, true), socket_address(l.client, false));
  const ClientWatch w(l.request());
  ASSERT_TRUE(w.found());
  EXPECT_FALSE(w.gone());
  ASSERT_EQ(send(l.client, "GET", 3, 0), 3);  // a pipelined request waiting: still there
  usleep(20000);
  EXPECT_FALSE(w.gone());
  char buf[3];
  ASSERT_EQ(recv(l.server, buf, 3, 0), 3);  // the server reads them; only the end of stream is left
  close(l.client);
  l.client = -1;
  usleep(20000);
  EXPECT_TRUE(w.gone());
}

TEST(ClientWatch, SeesAReset) {
  Loopback l;
  const ClientWatch w(l.request());
  ASSERT_TRUE(w.found());
  linger hard{1, 0};  // close with RST
  ASSERT_EQ(setsockopt(l.client, SOL_SOCKET, SO_LINGER, &hard, sizeof hard), 0);
  close(l.client);
  l.client = -1;
  usleep(20000);
  EXPECT_TRUE(w.gone());
}

TEST(ClientWatch, PicksTheRightConnectionAmongSeveral) {
  Loopback a, b;
  const ClientWatch wa(a.request()), wb(b.request());
  ASSERT_TRUE(wa.found() && wb.found());
  close(b.client);
  b.client = -1;
  usleep(20000);
  EXPECT_FALSE(wa.gone());
  EXPECT_TRUE(wb.gone());
}

TEST(ClientWatch, AnUnknownConnectionIsNeverGone) {
  httplib::Request r;
  r.local_addr = "127.0.0.1", r.local_port = 1, r.remote_addr = "127.0.0.1", r.remote_port = 2;
  const ClientWatch w(r);
  EXPECT_FALSE(w.found());
  EXPECT_FALSE(w.gone());
  EXPECT_EQ(socket_address(-1, true), "");
  EXPECT_EQ(socket_address(STDIN_FILENO, true), "");  // not a socket
}

}  // namespace
}  // namespace chatmill::serve
