// The dashboard's static files, embedded into the binary at build time
// (cmake/embed.cmake writes the definitions from web/): the page, its script,
// and uPlot's script and style from web/node_modules (npm ci). When uPlot was
// not installed at build time its entries hold a script that says so.
#pragma once

#include <string_view>

namespace ps::node {

struct DashboardAsset {
    std::string_view path;          // "/", "/dashboard.js", "/uplot.js", "/uplot.css"
    std::string_view content_type;
    std::string_view body;
};

// The assets, and how many there are.
const DashboardAsset* dashboard_assets(std::size_t& count);

}  // namespace ps::node
