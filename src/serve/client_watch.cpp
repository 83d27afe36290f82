#include "serve/client_watch.h"

#include <dirent.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <httplib.h>

namespace chatmill::serve {

std::string socket_address(int fd, bool peer) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  const int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len)
                      : getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  if (rc != 0 || (a.ss_family != AF_INET && a.ss_family != AF_INET6)) return "";
  char host[NI_MAXHOST], port[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&a), len, host, sizeof host, port, sizeof port,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return "";
  return std::string(host) + ":" + port;
}

ClientWatch::ClientWatch(const httplib::Request& req) {
  const std::string mine = req.local_addr + ":" + std::to_string(req.local_port);
  const std::string theirs = req.remote_addr + ":" + std::to_string(req.remote_port);
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  const int own = dirfd(dir);
  // Two open sockets cannot share both ends, so the first match is this request's connection.
  while (const dirent* d = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(d->d_name, &end, 10);
    if (end == d->d_name || *end != '\0' || fd == own) continue;
    const int f = static_cast<int>(fd);
    if (socket_address(f, true) == theirs && socket_address(f, false) == mine) {
      fd_ = f;
      break;
    }
  }
  closedir(dir);
}

bool ClientWatch::gone() const {
  if (fd_ < 0) return false;
  char c;
  const ssize_t n = recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;  // bytes waiting (a pipelined request): still there
  if (n == 0) return true;  // end of stream
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;  // a reset
}

}  // namespace chatmill::serve
