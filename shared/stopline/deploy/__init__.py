"""``stopline deploy functiongraph``: serverless.yml to FunctionGraph, without the Serverless Framework.

Four parts, each owning one thing: :mod:`.manifest` reads ``serverless.yml`` into typed function specs
(variables resolved, every value checked before anything is called); :mod:`.package` builds and zips
the FunctionGraph package reproducibly; :mod:`.fgapi` calls FunctionGraph's management API through
stopline's own signer and driver; :mod:`.planner` compares what the file says with what the cloud has
and carries out the difference. None of it is shipped in a function package.
"""
