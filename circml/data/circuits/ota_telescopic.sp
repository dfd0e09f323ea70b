* ota_telescopic: single-ended telescopic-cascode OTA with NMOS input, NMOS cascodes and a low-voltage PMOS cascode mirror load
.include ../models/ptm45.lib
* ---- sizing / bias parameters (W, L per matched group) ----
.param w_in=16u l_in=180n w_nc=8u l_nc=180n w_pc=16u l_pc=180n w_ld=8u l_ld=360n
.param w_tail=8u l_tail=360n ibias=20u vb_nc=0.8 vb_pc=0.3 cl=200f vcm=0.6 vshift=0.05
Vdd vdd 0 DC 1.0
* ---- bias: tail reference diode and cascode gate voltages ----
Iref vdd vbn DC {ibias}
Mb vbn vbn 0 0 nmos45 w={w_tail} l={l_tail}
Vbnc vbnc 0 DC {vb_nc}
Vbpc vbpc 0 DC {vb_pc}
* ---- OTA core ----
M0 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 n1 inp tail 0 nmos45 w={w_in} l={l_in}
M2 n2 inn tail 0 nmos45 w={w_in} l={l_in}
M3 x vbnc n1 0 nmos45 w={w_nc} l={l_nc}
M4 out vbnc n2 0 nmos45 w={w_nc} l={l_nc}
* PMOS cascode mirror: load gates tied to the left cascode drain (x)
M5 x vbpc p1 vdd pmos45 w={w_pc} l={l_pc}
M6 out vbpc p2 vdd pmos45 w={w_pc} l={l_pc}
M7 p1 x vdd vdd pmos45 w={w_ld} l={l_ld}
M8 p2 x vdd vdd pmos45 w={w_ld} l={l_ld}
Cl out 0 {cl}
* ---- open-loop bench: inputs at vcm, AC 1 on inp; DC-only servo with level shift
* (output settles at vcm - vshift) ----
Vinp inp 0 DC {vcm} AC 1
Vshift fb out DC {vshift}
Rfb fb inn 1g
Cfb inn 0 1
.end
