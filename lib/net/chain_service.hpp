// The serving side of a restore on another host (`page-server --lazy`): a
// chain this server holds, its small files sent at once and its page data
// read on demand, frame runs at a time (page_protocol.hpp). The server only
// reads: the client checks every file against the manifests' digests and
// every frame against its checksum, as it would for local images.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

#include "lib/base/result.hpp"
#include "lib/net/secure_channel.hpp"

namespace wpckpt::net {

struct ServedChain {
  std::string image;        // the name the client asked for
  bool complete = false;    // the client said it needs no more pages (Done)
  uint64_t bytes_sent = 0;  // page data
  uint64_t reads = 0;
  double seconds = 0;
};

// Serves one fetch connection (its Hello already read) until the client says
// Done or goes away. A chain outside `root` (a parent link leading out of it)
// is refused.
Result<ServedChain> serve_chain(SecureChannel& channel, const std::filesystem::path& root, const nlohmann::json& hello);

}  // namespace wpckpt::net
