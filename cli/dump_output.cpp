#include "cli/dump_output.hpp"

#include "lib/dump/attach_json.hpp"

namespace wpckpt::cli {

nlohmann::json dump_json(const dump::DumpReport& report, const std::string& images_dir, const std::string& parent) {
  nlohmann::json doc = dump::report_json(report);
  doc["images_dir"] = images_dir;
  doc["parent"] = parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(parent);
  doc["pages_stored"] = report.capture.pages_stored;
  doc["pages_zero"] = report.capture.pages_zero;
  doc["bytes_raw"] = report.capture.bytes_raw;
  doc["bytes_compressed"] = report.capture.bytes_compressed;
  doc["incremental"] = report.capture.incremental;
  doc["whole_reason"] = report.capture.whole_reason;
  doc["attach"] = dump::attach_json(report.attach);
  doc["warnings"] = report.warnings;
  return doc;
}

}  // namespace wpckpt::cli
