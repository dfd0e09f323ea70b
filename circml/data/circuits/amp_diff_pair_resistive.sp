* amp_diff_pair_resistive: NMOS differential pair with resistive loads and a mirrored tail current source
.include ../models/ptm45.lib
* sizing / bias parameters
.param w_in=4u l_in=180n rd=25k w_tail=8u l_tail=360n itail=40u cl=50f vcm=0.65
Vdd vdd 0 DC 1.0
* inputs at the common-mode level; AC stimulus on the positive input
Vinp inp 0 DC {vcm} AC 1
Vinn inn 0 DC {vcm}
M1 outn inp tail 0 nmos45 w={w_in} l={l_in}
M2 outp inn tail 0 nmos45 w={w_in} l={l_in}
Rd1 vdd outn {rd}
Rd2 vdd outp {rd}
* tail current source mirrored from a reference diode
Iref vdd vbn DC {itail}
M4 vbn vbn 0 0 nmos45 w={w_tail} l={l_tail}
M3 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
Cl1 outn 0 {cl}
Cl2 outp 0 {cl}
.end
