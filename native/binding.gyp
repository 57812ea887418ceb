# The launcher's spawn (spawn.c), built by scripts/build-native.mjs at npm install.
{
  "targets": [
    {
      "target_name": "jm_spawn",
      "sources": ["spawn.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
