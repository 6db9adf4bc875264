"use strict";
// What the page uploads: the model looks at a small centre square of each picture, so a phone
// photo is reduced here to that square at UPLOAD side (a whole multiple of the model's input),
// the way the server would reduce it: upright by its EXIF orientation, transparency on white,
// centre square, area averaging. The server's last step (area averaging UPLOAD -> input) then
// makes the same pixels as reducing the whole file (docs/serving.md, "What the page sends").
// Inlined into the page; research/upload_reduction.py runs this same file in Chromium.

const REDUCE_STRIP_ROWS = 256;  // rows read back at a time: bounded memory whatever the photo

// For an axis of n input pixels averaged into s outputs (n >= s): the first output each input
// pixel falls in, and the share of it that does (the rest goes to the next output).
function axisWeights(n, s) {
  const first = new Int32Array(n);
  const share = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const o = Math.min(s - 1, Math.floor((i * s) / n));
    first[i] = o;
    share[i] = Math.min(1, ((o + 1) * n) / s - i);
  }
  return { first, share };
}

// The centre square of a decoded picture, area-averaged to side x side, as RGBA pixels.
function areaAverage(bitmap, side) {
  const n = Math.min(bitmap.width, bitmap.height);
  const left = Math.floor((bitmap.width - n) / 2);
  const top = Math.floor((bitmap.height - n) / 2);
  const axis = axisWeights(n, side);
  const sums = new Float64Array(side * side * 3);
  const row = new Float64Array(side * 3);
  const strip = document.createElement("canvas");
  strip.width = n;
  strip.height = Math.min(REDUCE_STRIP_ROWS, n);
  const ctx = strip.getContext("2d", { willReadFrequently: true });
  for (let y0 = 0; y0 < n; y0 += strip.height) {
    const rows = Math.min(strip.height, n - y0);
    ctx.fillStyle = "#fff";  // transparent pixels count as white, as on the server
    ctx.fillRect(0, 0, n, rows);
    ctx.drawImage(bitmap, left, top + y0, n, rows, 0, 0, n, rows);
    const px = ctx.getImageData(0, 0, n, rows).data;
    for (let r = 0; r < rows; r++) {
      row.fill(0);
      // Sums kept in locals while the pixels fall in one output column (most of them, whole).
      let o = 0, red = 0, green = 0, blue = 0;
      for (let x = 0, p = r * n * 4; x < n; x++, p += 4) {
        const f = axis.first[x];
        if (f !== o) {
          row[o * 3] += red; row[o * 3 + 1] += green; row[o * 3 + 2] += blue;
          o = f; red = 0; green = 0; blue = 0;
        }
        const a = axis.share[x];
        if (a === 1) {
          red += px[p]; green += px[p + 1]; blue += px[p + 2];
        } else {  // a pixel on a column boundary: its share, the rest to the next column
          red += a * px[p]; green += a * px[p + 1]; blue += a * px[p + 2];
          row[o * 3 + 3] += (1 - a) * px[p];
          row[o * 3 + 4] += (1 - a) * px[p + 1];
          row[o * 3 + 5] += (1 - a) * px[p + 2];
        }
      }
      row[o * 3] += red; row[o * 3 + 1] += green; row[o * 3 + 2] += blue;
      const y = y0 + r;
      const a = axis.share[y];
      const base = axis.first[y] * side * 3;
      for (let k = 0; k < side * 3; k++) sums[base + k] += a * row[k];
      if (a < 1) for (let k = 0; k < side * 3; k++) sums[base + side * 3 + k] += (1 - a) * row[k];
    }
  }
  const area = (n / side) * (n / side);
  const out = new ImageData(side, side);
  for (let i = 0, j = 0; i < side * side * 3; i += 3, j += 4) {
    out.data[j] = Math.round(sums[i] / area);
    out.data[j + 1] = Math.round(sums[i + 1] / area);
    out.data[j + 2] = Math.round(sums[i + 2] / area);
    out.data[j + 3] = 255;
  }
  return out;
}

function pngOf(pixels) {
  const canvas = document.createElement("canvas");
  canvas.width = pixels.width;
  canvas.height = pixels.height;
  canvas.getContext("2d").putImageData(pixels, 0, 0);
  return new Promise((resolve, reject) => canvas.toBlob(
    (blob) => (blob ? resolve(blob) : reject(new Error("the browser could not encode a PNG"))),
    "image/png"));
}

// The file to upload for a picked one: {blob, how, side} where how is "as it is" (a PNG or JPEG of
// at most asItIsBytes (contract.AS_IT_IS_BYTES), or whose centre square is no larger than side),
// "reduced" or "converted" (a format the API does not
// take, such as WebP, AVIF or HEIC, that this browser can open), or {blob: file, how:
// "undecodable"} when the browser cannot open it (the API's answer then names the formats).
async function reduceForUpload(file, side, accepted, asItIsBytes) {
  const known = accepted.includes(file.type);
  if (known && file.size <= asItIsBytes) return { blob: file, how: "as it is", side: null };
  let bitmap;
  try {
    // As the server does: EXIF orientation applied, colours as stored (no ICC conversion).
    bitmap = await createImageBitmap(file, {
      imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none",
    });
  } catch (e) {
    return { blob: file, how: "undecodable" };
  }
  try {
    const n = Math.min(bitmap.width, bitmap.height);
    if (n <= side && known) return { blob: file, how: "as it is", side: n };
    const blob = await pngOf(areaAverage(bitmap, Math.min(n, side)));
    return { blob, how: known ? "reduced" : "converted", side: Math.min(n, side) };
  } finally {
    bitmap.close();
  }
}
