* ota_subthreshold_ecg: low-power subthreshold PMOS-input symmetrical OTA (200 nA tail) in a capacitive-feedback ECG front-end bench with pseudo-resistors
.include ../models/ptm45.lib
* ---- OTA sizing / bias (weak inversion, long channels) ----
.param w_in=20u l_in=1u w_nl=2u l_nl=2u w_pm=4u l_pm=2u w_tail=8u l_tail=2u w_bd=8u
.param ibias=200n cl=2p vcm=0.5
* ---- front-end feedback network: gain = cin/cf, pseudo-resistor sizing ----
.param cin=20p cf=200f w_pr=0.5u l_pr=4u
Vdd vdd 0 DC 1.0
* ---- bias: nA reference current into a PMOS diode ----
Iref vbp 0 DC {ibias}
Mb vbp vbp vdd vdd pmos45 w={w_bd} l={l_tail}
* ---- OTA core: PMOS input pair, NMOS diode loads, mirrored to a push-pull output ----
M0 tail vbp vdd vdd pmos45 w={w_tail} l={l_tail}
M1 a inn tail vdd pmos45 w={w_in} l={l_in}
M2 b inp tail vdd pmos45 w={w_in} l={l_in}
M3 a a 0 0 nmos45 w={w_nl} l={l_nl}
M4 b b 0 0 nmos45 w={w_nl} l={l_nl}
M5 c a 0 0 nmos45 w={w_nl} l={l_nl}
M6 out b 0 0 nmos45 w={w_nl} l={l_nl}
M7 c c vdd vdd pmos45 w={w_pm} l={l_pm}
M8 out c vdd vdd pmos45 w={w_pm} l={l_pm}
Cl out 0 {cl}
* ---- ECG front-end bench: AC-coupled electrode input, capacitive feedback, MOS-bipolar
* pseudo-resistors (back-to-back diode-connected PMOS) set the output DC to vcm ----
Vref inp 0 DC {vcm}
Vecg ecg 0 DC 0 AC 1
Cin ecg inn {cin}
Cf inn out {cf}
Mpa pr pr inn inn pmos45 w={w_pr} l={l_pr}
Mpb pr pr out out pmos45 w={w_pr} l={l_pr}
.end
