#include "dump-format/manifest.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <map>

#include "dump-format/byte_io.hpp"
#include "lib/base/json_text.hpp"

namespace wpckpt::image {

using nlohmann::json;

const char* kind_name(ImageKind kind) { return kind == ImageKind::Dump ? "dump" : "pre-dump"; }

std::string hex_u64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string rfc3339_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  // Not strftime: it loads the time zone (tzset), 0.2 ms inside a final dump.
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

bool valid_extra_file_name(const std::string& name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  if (name == kManifestName || name == kIndexName || name == kDataName) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
           c == '_';
  });
}

namespace {

// Text form used for the checksum and on disk: compact, keys sorted (json
// objects are ordered maps), invalid UTF-8 replaced so dump() never throws.
std::string canonical(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Digest128 text_digest(const std::string& text) { return digest_bytes(std::as_bytes(std::span(text.data(), text.size()))); }

// nlohmann's dump() recurses; refuse deep nesting before it can matter.
bool nesting_within(std::span<const std::byte> text, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (std::byte b : text) {
    char c = static_cast<char>(b);
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

// The canonical text of one area, written member by member in key order as
// canonical(json{...}) would write it, without a JSON value or serializer
// per member (lib/base/json_text.hpp): 32,000 areas took 52 ms to encode
// with one canonical() per member. The parse checks the text against
// nlohmann's own canonical form.
void append_area_text(std::string& out, const MemoryArea& a) {
  out += "{\"attributes\":";
  append_json_value(out, a.attributes, InvalidUtf8::Replace);
  out += ",\"backing\":";
  append_json_string(out, a.backing, InvalidUtf8::Replace);
  out += ",\"contents\":";
  out += a.contents ? "true" : "false";
  out += ",\"end\":";
  append_json_integer(out, a.end);
  out += ",\"file_offset\":";
  append_json_integer(out, a.file_offset);
  out += ",\"path\":";
  append_json_string(out, a.path, InvalidUtf8::Replace);
  out += ",\"prot\":";
  append_json_string(out, a.prot, InvalidUtf8::Replace);
  out += ",\"start\":";
  append_json_integer(out, a.start);
  out += '}';
}

// An object's canonical text from its members' canonical texts, by key;
// `checksum_at` gets where a "checksum" member goes (insert_checksum).
std::string object_text(const std::map<std::string, std::string>& members, size_t* checksum_at = nullptr) {
  size_t size = 2;
  for (const auto& [key, value] : members) size += key.size() + value.size() + 4;
  std::string text;
  text.reserve(size + 64);
  text += '{';
  for (const auto& [key, value] : members) {
    if (checksum_at && key > "checksum" && *checksum_at == 0) *checksum_at = text.size();
    if (text.size() > 1) text += ',';
    append_json_string(text, key);
    text += ':';
    text += value;
  }
  if (checksum_at && *checksum_at == 0) *checksum_at = text.size();
  text += '}';
  return text;
}

// The "checksum" member put into an object's canonical text at `at`: where
// the first member whose key sorts after it starts (its comma), or the
// closing brace. In place: the text is the size of all the areas.
void insert_checksum(std::string& text, size_t at, const std::string& value_text) {
  std::string member = "\"checksum\":" + value_text;
  if (text[at - 1] != '{') member = "," + member;  // members before it: ...A,"checksum":X
  else if (text[at] != '}') member += ',';          // only members after it: {"checksum":X,B...
  text.insert(at, member);
}

json record_to_json(const FileRecord& r) { return json{{"size", r.size}, {"digest", r.digest.hex()}}; }

// Typed field access that reports the field's name instead of throwing.
class Fields {
 public:
  Fields(const std::string& file) : file_(file) {}
  const Error& error() const { return error_; }
  bool failed() const { return failed_; }

  const json* field(const json& obj, const char* key, const std::string& where) {
    if (failed_) return nullptr;
    if (!obj.is_object()) return fail(where + " is not an object");
    auto it = obj.find(key);
    if (it == obj.end()) return fail(where + "." + key + " is missing");
    return &*it;
  }
  uint64_t u64(const json& obj, const char* key, const std::string& where) {
    const json* v = field(obj, key, where);
    if (!v) return 0;
    if (!v->is_number_unsigned()) return fail(where + "." + key + " is not an unsigned integer"), 0;
    return v->get<uint64_t>();
  }
  std::string str(const json& obj, const char* key, const std::string& where) {
    const json* v = field(obj, key, where);
    if (!v) return {};
    if (!v->is_string()) return fail(where + "." + key + " is not a string"), std::string();
    return v->get<std::string>();
  }
  bool boolean(const json& obj, const char* key, const std::string& where) {
    const json* v = field(obj, key, where);
    if (!v) return false;
    if (!v->is_boolean()) return fail(where + "." + key + " is not a boolean"), false;
    return v->get<bool>();
  }
  Digest128 digest(const json& obj, const char* key, const std::string& where) {
    Digest128 d;
    std::string s = str(obj, key, where);
    if (!failed_ && !Digest128::parse_hex(s, d)) fail(where + "." + key + " is not a 32-digit hex digest");
    return d;
  }
  std::nullptr_t fail(const std::string& what) {
    if (!failed_) error_ = format_error(file_, what);
    failed_ = true;
    return nullptr;
  }

 private:
  std::string file_;
  Error error_;
  bool failed_ = false;
};

bool page_aligned(uint64_t v) { return v % kPageSize == 0; }

void parse_areas(Fields& f, const json& list, Manifest& m) {
  if (!list.is_array()) return (void)f.fail("areas is not an array");
  m.areas.reserve(list.size());
  for (size_t i = 0; i < list.size() && !f.failed(); ++i) {
    std::string where = "areas[" + std::to_string(i) + "]";
    const json& j = list[i];
    MemoryArea a;
    a.start = f.u64(j, "start", where);
    a.end = f.u64(j, "end", where);
    a.prot = f.str(j, "prot", where);
    a.backing = f.str(j, "backing", where);
    a.path = f.str(j, "path", where);
    a.file_offset = f.u64(j, "file_offset", where);
    a.contents = f.boolean(j, "contents", where);
    if (const json* attrs = f.field(j, "attributes", where)) {
      if (!attrs->is_object()) f.fail(where + ".attributes is not an object");
      else a.attributes = *attrs;
    }
    if (f.failed()) return;
    if (!page_aligned(a.start) || !page_aligned(a.end) || a.start >= a.end)
      return (void)f.fail(where + " [" + hex_u64(a.start) + ", " + hex_u64(a.end) + ") is empty or not page aligned");
    if (!m.areas.empty() && a.start < m.areas.back().end)
      return (void)f.fail(where + " starts at " + hex_u64(a.start) + ", inside or before the previous area");
    m.areas.push_back(std::move(a));
  }
}

}  // namespace

// The canonical text of an object is its members in key order (nlohmann
// keeps an object's keys sorted): each member is dumped once, without
// copying the areas or the metadata into one document, and the checksum,
// over the text without it, takes its place among them. A final dump waits
// for this before its commit.
std::string encode_manifest(const ManifestDocument& doc) {
  const Manifest& m = doc.manifest;
  std::map<std::string, std::string> members;  // all but "areas", written straight into the text
  auto put = [&](const char* key, const json& value) { members[key] = canonical(value); };
  json files = json::object();
  for (const auto& [name, record] : doc.file_records) files[name] = record_to_json(record);
  put("files", files);
  json parent = nullptr;
  if (m.parent) parent = json{{"path", *m.parent}, {"digest", m.parent_digest.value_or("")}};
  put("parent", parent);
  const Manifest::Stats& s = m.stats;
  put("format", "wpckpt-image");
  put("format_version", m.format_version);
  put("kind", kind_name(m.kind));
  put("created", m.created);
  put("page_size", kPageSize);
  put("extra_files", m.files);
  put("stats", json{{"pages_stored", s.pages_stored},
                    {"pages_zero", s.pages_zero},
                    {"pages_fresh", s.pages_fresh},
                    {"bytes_raw", s.bytes_raw},
                    {"bytes_compressed", s.bytes_compressed},
                    {"frames", s.frames},
                    {"frame_pages", s.frame_pages},
                    {"compress_level", s.compress_level}});
  put("metadata", m.metadata);
  // "areas" sorts first: the areas are written once, in place, and the
  // other members after them as object_text() would.
  std::string rest = object_text(members);
  std::string text;
  text.reserve(m.areas.size() * 224 + rest.size() + 128);
  text += "{\"areas\":[";
  for (size_t i = 0; i < m.areas.size(); ++i) {
    if (i) text += ',';
    append_area_text(text, m.areas[i]);
  }
  text += "],";
  const size_t checksum_at = text.size() - 1;  // "created" and all the others sort after "checksum"
  text.append(rest, 1);
  insert_checksum(text, checksum_at, canonical(text_digest(text).hex()));
  text += '\n';
  return text;
}

namespace {

Result<json> parse_json_object(std::span<const std::byte> text, const std::string& file) {
  if (text.size() > kMaxManifestBytes) return format_error(file, "larger than " + std::to_string(kMaxManifestBytes) + " bytes");
  if (!nesting_within(text, 64)) return format_error(file, "JSON nested deeper than 64 levels");
  json j = json::parse(reinterpret_cast<const char*>(text.data()), reinterpret_cast<const char*>(text.data()) + text.size(),
                       nullptr, false);
  if (j.is_discarded()) return format_error(file, "not valid JSON (truncated or damaged)");
  if (!j.is_object()) return format_error(file, "not a JSON object");
  return j;
}

// The format name and version first (a newer format gets its own message),
// then the checksum over the canonical text and the text's canonical form.
Result<void> check_envelope(Fields& f, const json& j, std::span<const std::byte> text, const std::string& file,
                            Manifest& m) {
  if (f.str(j, "format", "manifest") != "wpckpt-image" && !f.failed()) f.fail("format is not \"wpckpt-image\"");
  uint64_t version = f.u64(j, "format_version", "manifest");
  if (f.failed()) return f.error();
  if (version != kManifestVersion)
    return format_error(file, "format_version " + std::to_string(version) + " is not supported (this wpckpt reads " +
                                  std::to_string(kManifestVersion) + ")")
        .with_hint("the image was written by a different wpckpt version; use that version to read it");
  m.format_version = static_cast<uint32_t>(version);

  // The checksum covers the canonical text of everything else. Each member
  // is dumped once for both texts: no copy of the document without it.
  Digest128 stored = f.digest(j, "checksum", "manifest");
  if (f.failed()) return f.error();
  std::map<std::string, std::string> members;
  for (const auto& [key, value] : j.items())
    if (key != "checksum") append_json_value(members[key], value, InvalidUtf8::Replace);
  size_t checksum_at = 0;
  std::string expected_text = object_text(members, &checksum_at);
  Digest128 actual = text_digest(expected_text);
  if (!(actual == stored)) return format_error(file, "checksum mismatch (stored " + stored.hex() + ", computed " + actual.hex() + ")");
  // The file is exactly the canonical text: no byte can change unnoticed.
  insert_checksum(expected_text, checksum_at, canonical(j.at("checksum")));
  expected_text += '\n';
  if (text.size() != expected_text.size() || std::memcmp(text.data(), expected_text.data(), text.size()) != 0)
    return format_error(file, "not in canonical form (damaged whitespace or truncated)");
  return ok();
}

void parse_kind(Fields& f, const json& j, Manifest& m) {
  std::string kind = f.str(j, "kind", "manifest");
  if (kind == "pre-dump") m.kind = ImageKind::PreDump;
  else if (kind == "dump") m.kind = ImageKind::Dump;
  else if (!f.failed()) f.fail("kind \"" + kind + "\" is neither \"pre-dump\" nor \"dump\"");
}

void parse_parent(Fields& f, const json& j, Manifest& m) {
  const json* parent = f.field(j, "parent", "manifest");
  if (!parent || parent->is_null()) return;
  m.parent = f.str(*parent, "path", "parent");
  m.parent_digest = f.digest(*parent, "digest", "parent").hex();
  if (!f.failed() && m.parent->empty()) f.fail("parent.path is empty");
}

void parse_file_records(Fields& f, const json& j, ManifestDocument& doc) {
  const json* files = f.field(j, "files", "manifest");
  if (!files) return;
  if (!files->is_object()) return (void)f.fail("files is not an object");
  for (auto it = files->begin(); it != files->end() && !f.failed(); ++it) {
    std::string where = "files[\"" + it.key() + "\"]";
    FileRecord r{f.u64(it.value(), "size", where), f.digest(it.value(), "digest", where)};
    doc.file_records[it.key()] = r;
  }
}

void parse_extra_files(Fields& f, const json& j, Manifest& m) {
  const json* extra = f.field(j, "extra_files", "manifest");
  if (!extra) return;
  if (!extra->is_array()) return (void)f.fail("extra_files is not an array");
  for (const json& name : *extra) {
    if (!name.is_string() || !valid_extra_file_name(name.get<std::string>()))
      return (void)f.fail("extra_files holds an invalid file name");
    m.files.push_back(name.get<std::string>());
  }
}

void parse_stats(Fields& f, const json& j, Manifest::Stats& st) {
  const json* s = f.field(j, "stats", "manifest");
  if (!s) return;
  st.pages_stored = f.u64(*s, "pages_stored", "stats");
  st.pages_zero = f.u64(*s, "pages_zero", "stats");
  st.pages_fresh = f.u64(*s, "pages_fresh", "stats");
  st.bytes_raw = f.u64(*s, "bytes_raw", "stats");
  st.bytes_compressed = f.u64(*s, "bytes_compressed", "stats");
  st.frames = f.u64(*s, "frames", "stats");
  st.frame_pages = static_cast<uint32_t>(f.u64(*s, "frame_pages", "stats"));
  if (const json* level = f.field(*s, "compress_level", "stats")) {
    if (!level->is_number_integer()) f.fail("stats.compress_level is not an integer");
    else st.compress_level = level->get<int>();
  }
}

// Everything after the envelope; the first problem is kept in `f`.
void parse_body(Fields& f, const json& j, ManifestDocument& doc) {
  Manifest& m = doc.manifest;
  parse_kind(f, j, m);
  m.created = f.str(j, "created", "manifest");
  if (f.u64(j, "page_size", "manifest") != kPageSize && !f.failed()) f.fail("page_size is not 4096");
  parse_parent(f, j, m);
  if (const json* areas = f.field(j, "areas", "manifest")) parse_areas(f, *areas, m);
  parse_file_records(f, j, doc);
  parse_extra_files(f, j, m);
  parse_stats(f, j, m.stats);
  if (const json* meta = f.field(j, "metadata", "manifest")) {
    if (!meta->is_object()) f.fail("metadata is not an object");
    else m.metadata = *meta;
  }
}

// Every file of the image has a record, and nothing else has one.
Result<void> check_file_records(const ManifestDocument& doc, const std::string& file) {
  std::vector<std::string> expected{kIndexName, kDataName};
  for (const std::string& name : doc.manifest.files) expected.push_back(name);
  std::sort(expected.begin(), expected.end());
  if (std::adjacent_find(expected.begin(), expected.end()) != expected.end())
    return format_error(file, "extra_files names a file twice");
  for (const std::string& name : expected)
    if (!doc.file_records.count(name)) return format_error(file, "files has no digest for \"" + name + "\"");
  if (doc.file_records.size() != expected.size()) return format_error(file, "files lists a file that is not part of the image");
  return ok();
}

}  // namespace

Result<ManifestDocument> parse_manifest(std::span<const std::byte> text, const std::string& file) {
  WPCKPT_TRY_ASSIGN(json j, parse_json_object(text, file));
  Fields f(file);
  ManifestDocument doc;
  try {
    WPCKPT_TRY(check_envelope(f, j, text, file, doc.manifest));
    parse_body(f, j, doc);
  } catch (const json::exception& e) {
    return format_error(file, std::string("unexpected JSON content: ") + e.what());
  }
  if (f.failed()) return f.error();
  WPCKPT_TRY(check_file_records(doc, file));
  return doc;
}

}  // namespace wpckpt::image
