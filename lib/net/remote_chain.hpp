// The client of `page-server --lazy`: a chain held on another host, read as
// if it were local (`restore --page-server`, eager or --lazy). The small
// files of every image (manifests, indexes, the process state) are copied at
// once into a private directory (/tmp/wpckpt-remote-XXXXXX, 0700, removed
// with this object) and opened as a chain whose page data is read from the
// server on demand (image::RemoteData). Every file is checked against the
// manifests' digests and every frame against its checksum, as for local
// images; the connection is authenticated (secure_channel.hpp).
//
// Fork: a process forked from the one that opened the chain (the lazy
// restore's pager) opens a connection of its own at its first read and
// leaves its parent's untouched; the server checks that the second
// connection names the same newest manifest.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "dump-format/image.hpp"
#include "lib/net/remote_sink.hpp"

namespace wpckpt::net {

class RemotePages;

class RemoteChain {
 public:
  // `name`: the chain's newest image under the server's directory (the last
  // component of the restore's -D).
  static Result<RemoteChain> open(const PageServerTarget& target, const std::string& name);
  RemoteChain(RemoteChain&&) noexcept;
  ~RemoteChain();

  image::ImageChain& chain() { return *chain_; }
  // No more pages are needed (all in, or the process ended): the server may
  // stop serving this restore.
  // Callable from a forked process; best effort.
  void done() const;

 private:
  RemoteChain() = default;
  std::filesystem::path mirror_;
  pid_t creator_ = 0;
  std::shared_ptr<RemotePages> pages_;
  std::unique_ptr<image::ImageChain> chain_;
};

}  // namespace wpckpt::net
