// manifest.json: the one JSON file of an image. It names the format version,
// the kind, the parent (relative path + digest of the parent's manifest.json),
// the memory areas, the extra files and a digest of every other file of the
// image, and ends with a checksum over its own canonical form.
#pragma once

#include <map>
#include <span>
#include <string>

#include "dump-format/digest.hpp"
#include "dump-format/image.hpp"

namespace wpckpt::image {

constexpr uint32_t kManifestVersion = 1;
constexpr const char* kManifestName = "manifest.json";
constexpr const char* kIndexName = "pages.idx";
constexpr const char* kDataName = "pages.dat";
// A manifest larger than this is refused before parsing (a few hundred
// thousand areas would still fit).
constexpr uint64_t kMaxManifestBytes = 256ull << 20;

struct FileRecord {
  uint64_t size = 0;
  Digest128 digest;
};

// Everything manifest.json holds: the public Manifest plus the file records.
struct ManifestDocument {
  Manifest manifest;
  std::map<std::string, FileRecord> file_records;  // pages.idx, pages.dat and every extra file
};

// Canonical JSON text (with its "checksum" field), as written to disk.
std::string encode_manifest(const ManifestDocument& doc);
// Parses and checks everything a reader needs: version, checksum, types,
// areas sorted/aligned/disjoint, file names. `file` names it in errors.
Result<ManifestDocument> parse_manifest(std::span<const std::byte> text, const std::string& file);

// Extra file names: a plain name, not hidden, not one of the image's own files.
bool valid_extra_file_name(const std::string& name);
// "2026-11-25T16:51:04Z"
std::string rfc3339_now();

}  // namespace wpckpt::image
