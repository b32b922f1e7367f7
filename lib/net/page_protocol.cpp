#include "lib/net/page_protocol.hpp"

#include <bit>
#include <cstring>

namespace wpckpt::net {

namespace {

// The peer's JSON is untrusted: a field of the wrong type reads as absent.
std::string text_field(const nlohmann::json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Result<void> send_json(SecureChannel& channel, MessageType type, const nlohmann::json& doc) {
  std::string text = doc.dump();
  return channel.send(type, std::as_bytes(std::span(text)));
}

Result<void> send_failure(SecureChannel& channel, const Error& e) {
  return send_json(channel, kFailed, {{"err", e.err}, {"op", e.op}, {"context", e.context}, {"hint", e.hint}});
}

Result<void> send_named(SecureChannel& channel, MessageType type, const std::string& name, std::span<const std::byte> bytes) {
  std::vector<std::byte> head(2 + name.size());
  head[0] = static_cast<std::byte>(name.size() & 0xff);
  head[1] = static_cast<std::byte>(name.size() >> 8);
  std::memcpy(head.data() + 2, name.data(), name.size());
  return channel.send(type, head, bytes);
}

Result<nlohmann::json> expect_json(const Message& m, MessageType type, const std::string& peer) {
  auto text = std::string_view(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return make_error(EPROTO, "page server protocol", peer + ": a message that is not a JSON object");
  if (m.type == kFailed) {
    auto err = doc.find("err");
    std::string op = text_field(doc, "op");
    Error e = make_error(err != doc.end() && err->is_number_integer() ? err->get<int>() : EPROTO,
                         op.empty() ? "page server" : op, text_field(doc, "context") + " (on " + peer + ")");
    e.hint = text_field(doc, "hint");
    return e;
  }
  if (m.type != type)
    return make_error(EPROTO, "page server protocol", peer + ": message " + std::to_string(m.type) + " where " +
                                                          std::to_string(type) + " was expected");
  return doc;
}

// Both ends are little endian (x86-64, arm64): the fields go as they are in memory.
static_assert(std::endian::native == std::endian::little);

std::vector<std::byte> encode_read(const ReadRequest& r) {
  std::vector<std::byte> out(24);
  uint64_t image = r.image;
  std::memcpy(out.data(), &image, 8);
  std::memcpy(out.data() + 8, &r.offset, 8);
  std::memcpy(out.data() + 16, &r.length, 8);
  return out;
}

Result<ReadRequest> decode_read(const Message& m) {
  if (m.type != kRead || m.payload.size() != 24)
    return make_error(EPROTO, "page server protocol", "a read request of the wrong type or size");
  uint64_t image = 0;
  ReadRequest r;
  std::memcpy(&image, m.payload.data(), 8);
  std::memcpy(&r.offset, m.payload.data() + 8, 8);
  std::memcpy(&r.length, m.payload.data() + 16, 8);
  if (image > UINT32_MAX) return make_error(EPROTO, "page server protocol", "a read request for image " + std::to_string(image));
  r.image = static_cast<uint32_t>(image);
  return r;
}

Result<std::pair<std::string, std::span<const std::byte>>> split_named(const Message& m) {
  if (m.payload.size() < 2) return make_error(EPROTO, "page server protocol", "a file message without a name");
  size_t len = static_cast<size_t>(m.payload[0]) | static_cast<size_t>(m.payload[1]) << 8;
  if (m.payload.size() < 2 + len) return make_error(EPROTO, "page server protocol", "a file name past the message");
  std::string name(reinterpret_cast<const char*>(m.payload.data()) + 2, len);
  return std::pair{name, std::span<const std::byte>(m.payload).subspan(2 + len)};
}

}  // namespace wpckpt::net
