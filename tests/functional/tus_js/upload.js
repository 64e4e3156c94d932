// Upload one file with tus-js-client: node upload.js <endpoint> <api key> <file> <bucket> <key> <chunk size>
// parallelUploads: 2 makes the client create two partial uploads and concatenate them.
// Prints {"url": ...} on success; any error exits 1 with the message on stderr.
"use strict";

const fs = require("fs");
const tus = require("tus-js-client");

const [endpoint, apiKey, file, bucket, key, chunkSize] = process.argv.slice(2);
const data = fs.readFileSync(file);

const upload = new tus.Upload(data, {
  endpoint,
  headers: { Authorization: `Bearer ${apiKey}` },
  chunkSize: Number(chunkSize),
  parallelUploads: 2,
  metadata: { bucket, filename: key, filetype: "application/octet-stream" },
  metadataForPartialUploads: { bucket },
  retryDelays: [],
  onError(error) {
    console.error(String(error));
    process.exit(1);
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url }));
  },
});
upload.start();
