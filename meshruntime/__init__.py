"""The process runtime every local mesh stands on (the reference mesh's ``LocalMesh`` and the
third-party ``ThirdPartyMesh``): children that cannot outlive their owner (:mod:`.processes`:
``ManagedProcess``, ``wait_until``, run-id and owner tags, process facts through psutil), address blocks
on loopback (:mod:`.layout`), and the sweep of what a dead run left (:mod:`.sweep`)."""
