// Time-lapse: sickness map for every frame of a stack, and a plot of the mean sick probability
// over time, to see when the light starts to hurt the cells.
//   phototox fiji --macro phototox_timelapse.ijm --args "input=[/data/my movie.tif] output=/data/out channel=1"
// Time axis: the stack's frame interval (Image>Properties) in minutes or hours, else frame numbers.
// Frames out of the model's domain are marked with a red x.
// Multichannel hyperstacks: the channel given by channel=N (default 1) is analysed.
// Needs Phototox_.jar and either 'phototox fiji' (in-process) or a running 'phototox serve'.
// Model: DeadNet (Richmond et al., 2017, arXiv:1701.06109), reimplemented by phototox.

args = getArgument();
input = phototoxArg(args, "input", "");
output = phototoxArg(args, "output", "");
if (input == "") input = File.openDialog("Time-lapse stack (TIFF)");
if (output == "") output = getDirectory("Folder for maps, results and plot");
if (!endsWith(output, File.separator)) output = output + File.separator;
options = "stack mode=" + phototoxArg(args, "mode", "dense");
stride = phototoxArg(args, "stride", "");  // default: phototox's own (phototox.defaults.DEFAULT_STRIDE)
if (stride != "") options = options + " stride=" + stride;
model = phototoxArg(args, "model", "");  // default: the model phototox fiji / phototox serve was started with
if (model != "") options = options + " model=[" + model + "]";
server = phototoxArg(args, "server", "");
if (server != "") options = options + " server=" + server;

setBatchMode(true);
run("Clear Results");
open(input);
stackName = File.nameWithoutExtension;
Stack.getDimensions(width, height, channels, slices, timepoints);
interval = Stack.getFrameInterval();
Stack.getUnits(ux, uy, uz, timeUnit, uValue);
if (channels > 1) {
    channel = parseInt(phototoxArg(args, "channel", "1"));
    if (isNaN(channel) || channel < 1 || channel > channels) exit("phototox: channel=" + channel + " but the stack has " + channels + " channels");
    run("Duplicate...", "duplicate channels=" + channel);
    print("phototox: analysing channel " + channel + " of " + channels);
}
frames = nSlices;
r = call("phototox.Phototox.measure", options);
if (startsWith(r, "error:")) exit("phototox: " + substring(r, 7));
saveAs("Tiff", output + stackName + "_sickmap.tif");

// Time axis in minutes, or hours for runs of two hours or more (ImageJ keeps intervals in seconds
// unless the stack says otherwise); frame numbers when the stack has no interval.
toSeconds = 0;
if (timeUnit == "sec" || timeUnit == "s" || timeUnit == "second" || timeUnit == "seconds") toSeconds = 1;
if (timeUnit == "min" || timeUnit == "minute" || timeUnit == "minutes") toSeconds = 60;
if (timeUnit == "h" || timeUnit == "hr" || timeUnit == "hour" || timeUnit == "hours") toSeconds = 3600;
axisUnit = timeUnit;
axisScale = 1;
if (interval > 0 && toSeconds > 0) {
    axisUnit = "min";
    axisScale = toSeconds / 60;
    if ((frames - 1) * interval * toSeconds >= 7200) { axisUnit = "h"; axisScale = toSeconds / 3600; }
}
t = newArray(frames);
p = newArray(frames);
outT = newArray(0);
outP = newArray(0);
for (i = 0; i < frames; i++) {
    if (interval > 0) t[i] = i * interval * axisScale; else t[i] = i + 1;
    row = nResults - frames + i;
    p[i] = getResult("MeanSickProbability", row);
    if (getResultString("OutOfDomain", row) == "True") { outT = Array.concat(outT, t[i]); outP = Array.concat(outP, p[i]); }
}
if (interval > 0) xLabel = "time (" + axisUnit + ")"; else xLabel = "frame";
model = getResultString("Model", nResults - 1);
if (indexOf(model, " sha256") > 0) model = substring(model, 0, indexOf(model, " sha256"));
pixelSize = getResultString("PixelSize_um", nResults - 1) + " um/px (" + getResultString("PixelSizeSource", nResults - 1) + ")";
Plot.create("phototox: " + stackName, xLabel, "mean P(sick) (0 healthy - 1 sick)");
Plot.setLimits(t[0], maxOf(t[0] + 1, t[frames - 1]), 0, 1);
Plot.setColor("blue");
Plot.setLineWidth(1);
Plot.add("connected circle", t, p);
Plot.setLegend("mean P(sick) of the frame", "top-right");
if (outT.length > 0) {
    Plot.setColor("red");
    Plot.setLineWidth(2);
    Plot.add("x", outT, outP);
    Plot.setLegend("mean P(sick) of the frame\tout of the model's domain (unlike its training images)", "top-right");
}
Plot.setColor("black");
Plot.setFontSize(12);
Plot.addText(stackName + ": mean P(sick) per frame; " + model + ", " + pixelSize, 0, 0);
Plot.show();
saveAs("PNG", output + stackName + "_sickness_over_time.png");
saveAs("Results", output + stackName + "_phototox.csv");
print("phototox: " + frames + " frame(s), x axis " + xLabel + "; first " + d2s(p[0], 3) + ", last " + d2s(p[frames - 1], 3) + "; " + outT.length + " frame(s) out of the model's domain");

// key=value or key=[value with spaces] (ImageJ's own option syntax) -> value of key (or fallback).
function phototoxArg(arguments, key, fallback) {
    return call("ij.Macro.getValue", arguments, key, fallback);
}
