"""What the HAProxy and nginx adapters share (a proxy nobody here wrote, run as every workload's sidecar).

- ``topology``: the scenario as one workload's proxy sees it (a view model the templates render);
- ``san_patterns``: regexes that find a URI SAN in a certificate for proxies that cannot parse one;
- ``identity``: the harness as the mesh CA: per-workload SVID files, renewed at half their lifetime;
- ``runtime``: echoes and proxies as managed local processes, reload, "in effect" by observation;
- ``adapter``: the MeshAdapter (+ MeshCertificates, HopInterposer) both adapters subclass.
"""
