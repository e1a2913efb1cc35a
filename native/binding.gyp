{
  "targets": [
    {
      "target_name": "aigate_nfq",
      "sources": ["src/nfq.c", "src/nfq_msg.c", "src/nfq_batch.c", "src/addon.cc", "src/queue.cc", "src/quic_crypto.cc", "src/notify.cc"],
      "libraries": ["-lmnl"],
      "defines": ["NAPI_VERSION=9", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra", "-O2"],
      "cflags!": ["-O3"],
      "cflags_c": ["-std=gnu11"],
      "cflags_cc": ["-std=c++17", "-fvisibility-inlines-hidden", "-fno-exceptions"],
      "conditions": [
        ["node_shared_openssl=='true'", {"libraries": ["-lcrypto"]}]
      ]
    }
  ]
}
