// The daemon's side of the rollout dashboard (node/dashboard.hpp): which patch
// it shows, and starting it from [dashboard].
#include "node/daemon.hpp"
#include "transfer/connection.hpp"

namespace ps::node {

Status Daemon::start_dashboard() {
    const bool publish = cfg_.dashboard_publish || (!cfg_.dashboard.empty() && setup_.identity.role == Role::Super);
    if (cfg_.dashboard.empty() && !publish) return {};
    Dashboard::Options o;
    o.interval_ms = cfg_.dashboard_interval_ms;
    o.publish = publish && setup_.identity.role == Role::Super;
    // The newest version among the patches this node serves or holds.
    auto current = [this]() -> std::optional<VerifiedManifest> {
        const VerifiedManifest* best = nullptr;
        for (auto& [id, vm] : manifests_)
            if (!best || vm.manifest.version > best->manifest.version ||
                (vm.manifest.version == best->manifest.version && vm.manifest.name < best->manifest.name))
                best = &vm;
        return best ? std::optional<VerifiedManifest>(*best) : std::nullopt;
    };
    dashboard_ = std::make_unique<Dashboard>(loop_, *node_, current, o);
    std::string host;
    int port = -1;
    if (!cfg_.dashboard.empty()) {
        auto ep = transfer::parse_endpoint(cfg_.dashboard);
        if (!ep) return cfg_.problem("dashboard.listen", ep.error());
        host = ep->first;
        port = ep->second;
    }
    if (auto st = dashboard_->start(host, port); !st) return cfg_.problem("dashboard.listen", st.error());
    return {};
}

}  // namespace ps::node
