"""MJCF for the sim world: gym-hil's Franka Panda (Robotiq 2F-85 hand) on a table.

The Panda is read from the ``gym-hil`` package's assets (no download) and included as a
virtual file, with two edits made as text so that the shipped file stays untouched:

* the wrist camera ``handcam_rgb`` is renamed ``wrist``;
* a task may attach bodies to the gripper (the peg of ``peg_insert``) right after the
  ``pinch`` site, the tool centre point (TCP) between the fingertips.

Cartesian control, an impedance controller built from physics: the mocap body
``ee_target`` is the TCP target; below it a light body ``ee_spring`` hangs on three
spring-damper slide joints (``compliance_stiffness`` N/m, ``compliance_damping`` N·s/m,
in true force units), and ``ee_spring``'s child ``ee_flange_ref`` (placed where the flange
is relative to the TCP) is welded to the flange. Translation is therefore compliant at
the TCP (pushing 1 cm into a wall costs about ``stiffness * 0.01`` N) while orientation
follows the rigid weld. Gravity is compensated (``gravcomp``) as a real arm's controller
does.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Collision bits: default geoms are 1/1; the table and task fixtures are 3/3 so they also
#: touch "tool" geoms (2/2) such as the peg, which must not touch the fingers holding it.
#: Stiff contacts (solref 4 ms) so the peg cannot sink into the hole's walls.
FIXTURE_CONTACT = 'contype="3" conaffinity="3" solref="0.004 1" solimp="0.95 0.99 0.001"'
TOOL_CONTACT = 'contype="2" conaffinity="2" solref="0.004 1" solimp="0.95 0.99 0.001"'


def gym_hil_assets() -> Path:
    """Folder of gym-hil's MuJoCo assets (``panda.xml`` and its meshes)."""
    import gym_hil

    path = Path(os.path.dirname(gym_hil.__file__)) / "assets"
    if not (path / "panda.xml").is_file():
        raise FileNotFoundError(f"gym-hil's Panda model not found at {path}/panda.xml")
    return path


def panda_xml(tool_body: str = "") -> str:
    """gym-hil's ``panda.xml`` with the wrist camera renamed and ``tool_body`` at the TCP."""
    text = (gym_hil_assets() / "panda.xml").read_text()
    text = text.replace('name="handcam_rgb"', 'name="wrist"')
    # the arm's controller compensates gravity (as libfranka does); must be set in the
    # MJCF: MuJoCo skips gravity compensation when no body asked for it at compile time
    text = text.replace("<body ", '<body gravcomp="1" ')
    anchor = '<site name="pinch" pos="0 0 0.145"/>'
    if anchor not in text:
        raise RuntimeError("gym-hil's panda.xml changed: no pinch site to attach tools to")
    if tool_body:
        text = text.replace(anchor, anchor + f'<body name="tool" pos="0 0 0.145">{tool_body}</body>')
    return text


def scene_xml(task_worldbody: str, timestep: float, weld_solref: tuple[float, float],
              offscreen_size: tuple[int, int], compliance: tuple[float, float] = (10000.0, 400.0)) -> str:
    """The full scene: Panda include, table, cameras, lights, mocap weld, task objects.

    Args:
        task_worldbody: MJCF placed inside ``<worldbody>`` (the task's objects).
        timestep: physics step, seconds.
        weld_solref: (time constant s, damping ratio) of the flange weld.
        compliance: (stiffness N/m, damping N·s/m) of the TCP's translational springs.
        offscreen_size: (width, height) of the largest offscreen render, pixels.
    """
    width, height = offscreen_size
    k, b = compliance
    springs = "".join(f'<joint name="ee_spring_{a}" type="slide" axis="{ax}" stiffness="{k}" damping="{b}"/>'
                      for a, ax in (("x", "1 0 0"), ("y", "0 1 0"), ("z", "0 0 1")))
    return f"""
<mujoco model="hilr_sim">
  <compiler angle="radian" meshdir="{gym_hil_assets()}" autolimits="true"/>
  <include file="panda_hilr.xml"/>
  <option timestep="{timestep}" noslip_iterations="3" cone="elliptic" impratio="5"/>
  <statistic center="0.45 0 0.15" extent="0.8"/>
  <visual>
    <headlight diffuse=".5 .5 .5" ambient=".45 .45 .45" specular="0 0 0"/>
    <global offwidth="{width}" offheight="{height}"/>
    <quality shadowsize="0" offsamples="0"/>
  </visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" width="256" height="256"
             rgb1=".22 .24 .28" rgb2=".28 .30 .34"/>
    <material name="grid" texture="grid" texrepeat="4 4" texuniform="true" reflectance="0"/>
    <material name="table" rgba=".62 .52 .40 1" reflectance="0"/>
  </asset>
  <worldbody>
    <light pos="0.4 0 2" dir="0 0 -1" diffuse=".6 .6 .6" specular="0 0 0" castshadow="false"/>
    <geom name="floor" type="plane" size="2 2 0.01" pos="0 0 -0.04" material="grid"/>
    <geom name="table" type="box" size="0.45 0.55 0.02" pos="0.45 0 -0.02" material="table"
          {FIXTURE_CONTACT} friction="1 0.005 0.0001"/>
    <camera name="front" pos="1.05 0 0.42" xyaxes="0 1 0 -0.34 0 0.6" fovy="50"/>
    <body name="ee_target" mocap="true" pos="0.45 0 0.3">
      <body name="ee_spring" gravcomp="1">
        {springs}
        <inertial pos="0 0 0" mass="0.2" diaginertia="2e-4 2e-4 2e-4"/>
        <body name="ee_flange_ref"/>
      </body>
    </body>
    {task_worldbody}
  </worldbody>
  <equality>
    <weld name="ee_weld" body1="ee_flange_ref" body2="attachment" relpose="0 0 0 1 0 0 0"
          solref="{weld_solref[0]} {weld_solref[1]}" solimp="0.9 0.95 0.001"/>
  </equality>
</mujoco>
"""
