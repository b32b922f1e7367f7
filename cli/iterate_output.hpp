// What iterate and migrate print about their iterations: one JSON object
// per line with --json, one text line otherwise.
#pragma once

#include <nlohmann/json.hpp>

#include "lib/iterate/iterate.hpp"

namespace wpckpt::cli {

nlohmann::json iteration_json(const iterate::IterationFigures& f);
nlohmann::json result_json(const iterate::IterateReport& r);
void print_iteration_text(const iterate::IterationFigures& f);
// One iteration as it ends: its JSON line, or its text line.
void print_iteration(const iterate::IterationFigures& f, bool json);

}  // namespace wpckpt::cli
