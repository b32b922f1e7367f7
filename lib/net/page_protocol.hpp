// The page server's messages, inside a SecureChannel (secure_channel.hpp).
// One connection carries one image:
//   client  Hello     {"version", "image": NAME, "kind", "parent": REL|null}
//   server  Ready     {"parent": {"relative_path", "manifest_digest", "metadata"}|null}
//                     (or Failed)
//   client  Append    NAME-OF-FILE + bytes, the page data stream in order
//   client  File      NAME-OF-FILE + bytes, a whole file
//   client  Commit
//   server  Committed {"dir", "bytes"} once the image is checked and renamed
//                     into place (or Failed: nothing of it is kept)
// A migration's last step is a connection of its own:
//   client  Hello     {"version", "op": "restore", "image": NAME}
//   server  Restored  {"pid", "seconds"} once the process runs there (or Failed)
// A lazy (or eager) restore on another host reads a chain this server holds
// (`page-server --lazy`, chain_service.hpp):
//   client  Hello     {"version", "op": "fetch", "image": NAME,
//                      "pages_only": false | true, "manifest_digest": HEX}
//   server  Ready     {"images": [{"path": REL, "files": N}, ...]} newest first
//                     (or Failed)
//   server  File      "I/NAME" + bytes: manifest, index and extra files of
//                     image I (not with pages_only: a second connection of
//                     the same restore, which names the newest manifest)
//   client  Read      image, offset, length (24 bytes, little endian)
//   server  Data      those bytes of the image's pages.dat (or Failed)
//   client  Done      no more pages needed (all in, or the process ended)
// Failed carries {"err", "op", "context", "hint"}: the receiver's Error.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/net/secure_channel.hpp"

namespace wpckpt::net {

constexpr int kProtocolVersion = 1;

enum MessageType : uint32_t {
  kHello = 1, kReady, kAppend, kFile, kCommit, kCommitted, kFailed, kRestored, kRead, kData, kDone
};

// Largest message accepted: page data comes in batches of about 1 MiB.
constexpr uint64_t kMaxMessageBytes = 64ull << 20;

Result<void> send_json(SecureChannel& channel, MessageType type, const nlohmann::json& doc);
Result<void> send_failure(SecureChannel& channel, const Error& error);
Result<void> send_named(SecureChannel& channel, MessageType type, const std::string& name, std::span<const std::byte> bytes);

// Parses a JSON payload; a Failed message becomes its Error.
Result<nlohmann::json> expect_json(const Message& message, MessageType type, const std::string& peer);
// Read: which bytes of which image's pages.dat.
struct ReadRequest {
  uint32_t image = 0;
  uint64_t offset = 0, length = 0;
};
std::vector<std::byte> encode_read(const ReadRequest& r);
Result<ReadRequest> decode_read(const Message& message);

// Splits a named payload into its name and bytes.
Result<std::pair<std::string, std::span<const std::byte>>> split_named(const Message& message);

}  // namespace wpckpt::net
