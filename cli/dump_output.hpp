// The --json document of dump and snapshot: the library's report plus what
// the user gave and the image's figures (and "snapshot" when the memory was
// read from a copy-on-write copy).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "lib/dump/dump.hpp"

namespace wpckpt::cli {

nlohmann::json dump_json(const dump::DumpReport& report, const std::string& images_dir, const std::string& parent);

// A tree's members, for --json ("processes") and as text lines (pre-dump and dump).
nlohmann::json tree_json(const std::vector<dump::TreeMemberReport>& processes);
void print_tree_lines(const std::vector<dump::TreeMemberReport>& processes);

}  // namespace wpckpt::cli
