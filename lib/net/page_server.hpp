// `wpckpt page-server`: receives images over authenticated connections
// (secure_channel.hpp, page_protocol.hpp) into a root directory. Each image
// is written like a local one (a hidden sibling renamed into place), after
// every frame's checksum, every file's digest and its parent link were
// checked; a connection that breaks or fails a check leaves nothing.
//
// Names: an image is stored at ROOT/NAME, NAME being the last component of
// the sender's -D; its parent, a path relative to it as CRIU's
// --prev-images-dir, must resolve to an image inside ROOT.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/net/chain_service.hpp"
#include "lib/net/secure_channel.hpp"

namespace wpckpt::net {

struct ReceivedImage {
  std::filesystem::path dir;
  std::string kind;  // "pre-dump" | "dump"
  std::string peer;
  uint64_t bytes = 0;
  double seconds = 0;  // from the handshake to the commit
};

// A migration asks the server to restore the dump it sent (`page-server
// --restore`); the caller restores and answers through it.
class RestoreAsk {
 public:
  RestoreAsk(std::filesystem::path dir, std::shared_ptr<SecureChannel> channel)
      : dir_(std::move(dir)), channel_(std::move(channel)), asked_(std::chrono::steady_clock::now()) {}
  const std::filesystem::path& dir() const { return dir_; }
  const std::string& peer() const { return channel_->peer(); }
  // The process runs as `pid` (the answer says how long after the request).
  Result<void> running(int pid);
  void failed(const Error& error);

 private:
  std::filesystem::path dir_;
  std::shared_ptr<SecureChannel> channel_;
  std::chrono::steady_clock::time_point asked_;
};

// A restore on another host reading a chain of this server (`page-server
// --lazy`, chain_service.hpp). Each such connection is served on a thread of
// its own, for as long as that restore needs pages: `started` when it was
// accepted, then once more when it ended.
struct FetchEvent {
  bool ended = false;
  std::string peer;
  ServedChain served;          // ended: what it read, and whether it said Done
  std::optional<Error> error;  // ended: why it failed
};

// What one connection brought: an image, a restore request, or a fetch.
struct Incoming {
  std::optional<ReceivedImage> image;
  std::optional<RestoreAsk> restore;
  std::optional<FetchEvent> fetch;
};

struct FetchQueue;

class PageServer {
 public:
  // `allow_restore`: accept a migration's request to restore a received dump;
  // `allow_fetch`: serve chains to restores on other hosts.
  static Result<PageServer> open(const std::filesystem::path& root, const Endpoint& listen,
                                 const std::filesystem::path& secret_file, bool allow_restore = false,
                                 bool allow_fetch = false);
  uint16_t port() const { return port_; }
  // Accepts one connection and serves it (a fetch: starts serving it), or
  // reports a fetch that ended. An error is that connection's (refused,
  // broken, a bad image): the server can go on.
  Result<Incoming> receive_one();

 private:
  PageServer(std::filesystem::path root, UniqueFd listener, uint16_t port, std::vector<uint8_t> secret,
             bool allow_restore, bool allow_fetch);
  Result<FetchEvent> start_fetch(std::shared_ptr<SecureChannel> channel, const nlohmann::json& hello);
  std::filesystem::path root_;
  UniqueFd listener_;
  uint16_t port_ = 0;
  std::vector<uint8_t> secret_;
  bool allow_restore_ = false, allow_fetch_ = false;
  std::shared_ptr<FetchQueue> fetches_;
};

// The client of a restore request: asks the server to restore image `name`
// (a dump it received) and waits until the process runs there.
struct RemoteRestore {
  int pid = 0;
  double seconds = 0;  // on the server, from the request to the process running
};
Result<RemoteRestore> request_restore(const Endpoint& server, const std::filesystem::path& secret_file,
                                      const std::string& name);

}  // namespace wpckpt::net
