// MMLU's 57 subjects, their subcategories and the four categories, as hendrycks/test's categories.py groups them.
#pragma once
#include <string>

namespace chatmill::eval {

// "STEM", "humanities", "social sciences" or "other (business, health, misc.)"; subjects it does not know
// (self-made ones) count as "other (business, health, misc.)".
std::string mmlu_category(const std::string& subject);

}  // namespace chatmill::eval
