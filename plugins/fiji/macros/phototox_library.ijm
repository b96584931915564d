// phototox macro library for ImageJ/Fiji.
// Paste these functions into your macro (or append this file to macros/Library.txt) and call
// phototoxMeasure() on the current image. They need the phototox plugin (Phototox_.jar) and
// either ImageJ started through 'phototox fiji' or a running 'phototox serve'.
// Model: DeadNet (Richmond et al., 2017, arXiv:1701.06109) as reimplemented by phototox.

// Analyse the current image; show the sickness map and add a row to the Results table.
// Returns the mean sick probability; aborts the macro with a clear message on error.
function phototoxMeasure(options) {
    r = call("phototox.Phototox.measure", options);
    if (startsWith(r, "error:"))
        exit("phototox: " + substring(r, 7));
    return parseFloat(phototoxValue(r, "mean_sick_probability"));
}

// One value ("label", "confidence", "sick_area_fraction", ...) from a phototox result line.
function phototoxValue(line, key) {
    parts = split(line, ";");
    for (i = 0; i < parts.length; i++) {
        kv = split(parts[i], "=");
        if (kv[0] == key) return kv[1];
    }
    return "";
}

// key=value or key=[value with spaces] (ImageJ's own option syntax) -> value of key (or fallback).
function phototoxArg(arguments, key, fallback) {
    return call("ij.Macro.getValue", arguments, key, fallback);
}
